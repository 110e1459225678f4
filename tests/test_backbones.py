"""Each family's backbone on its tiny model: it samples what the family's diffusers pipeline samples,
and it declares (and refuses) what differs between families."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxPipeline, FluxTransformer2DModel

from baselines import DiffEditDDIM, LeditsPP
from instdiffedit import InstDiffEdit
from instdiffedit.backbones import (
    AttentionOptions,
    Flux,
    FluxFill,
    StableDiffusion,
    StableDiffusion3,
    StableDiffusionXL,
    backbone_for,
    check_family,
    family_of,
)
from instdiffedit.backbones.flux import image_ids

FAMILIES = ("sd", "sdxl", "sd3", "flux")
SAMPLERS = (*FAMILIES, "flux_schnell")
PROMPT = "a blue square on a red background"
STEPS = 4


def _noise(backbone, rows: int = 1) -> torch.Tensor:
    return backbone.noise((rows, backbone.latent_channels, *backbone.latent_size), torch.Generator().manual_seed(3))


def schnell(flux: FluxPipeline) -> FluxPipeline:
    """The tiny FLUX.1 [dev] with a random transformer without the guidance input, as [schnell]'s."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = FluxTransformer2DModel(**{**flux.transformer.config, "guidance_embeds": False}).eval()
    return FluxPipeline(**{**flux.components, "transformer": transformer})


@pytest.mark.parametrize("family", SAMPLERS)
def test_the_backbone_samples_what_the_familys_pipeline_samples(tiny_family, family: str) -> None:
    """Text encoding and extra conditioning, the unconditional inputs, the denoiser's call (FLUX's
    packing and ids inside it), the schedule (FLUX's shifted linear sigmas) and the guided step
    (classifier-free, embedded in FLUX.1 [dev], none in [schnell])."""
    pipe = schnell(tiny_family("flux").base) if family == "flux_schnell" else tiny_family(family).base
    b = backbone_for(pipe, scheduler=type(pipe.scheduler).__name__)
    noise = _noise(b)
    timesteps = b.timesteps(STEPS, 1.0)
    ours = b.denoise(b.schedule.start_latents(noise), timesteps, b.text_guidance([PROMPT], 5.0))
    side = b.resolution
    flux = family.startswith("flux")
    given = FluxPipeline._pack_latents(noise, 1, b.latent_channels, *b.latent_size) if flux else noise
    length = {"max_sequence_length": b.max_sequence_length} if flux else {}  # the pipeline's default is [dev]'s 512
    theirs = pipe(PROMPT, latents=given, num_inference_steps=STEPS, guidance_scale=5.0, height=side, width=side, output_type="latent", **length).images
    if flux:
        theirs = FluxPipeline._unpack_latents(theirs, side, side, b.vae_scale_factor)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_each_family_has_its_backbone_and_native_size(tiny_family) -> None:
    expected = {"sd": StableDiffusion, "sdxl": StableDiffusionXL, "sd3": StableDiffusion3, "flux": Flux}
    for family, cls in expected.items():
        pipes = tiny_family(family)
        b = backbone_for(pipes.base)
        assert type(b) is cls and b.family == family_of(pipes.base) == family
        assert b.resolution == 64 and b.latent_size == (32, 32)
    assert type(backbone_for(tiny_family("flux").inpaint)) is FluxFill
    with pytest.raises(TypeError, match="No backbone for a str"):
        backbone_for("CompVis/stable-diffusion-v1-4")


def test_classifier_free_guidance_and_embedded_guidance(tiny_family) -> None:
    """CFG families guide with two rows per latent row; FLUX.1 [dev] with one and the scale as an input."""
    for family in ("sd", "sdxl", "sd3"):
        guidance = backbone_for(tiny_family(family).base).text_guidance(["a", "b"], 7.5)
        assert guidance.rows_per_latent == 2 and all(t.shape[0] == 2 for t in guidance.uncond + guidance.cond)
    flux = backbone_for(tiny_family("flux").base)
    guidance = flux.text_guidance(["a", "b"], 3.5)
    assert flux.guidance == "embedded" and guidance.uncond is None and guidance.rows_per_latent == 1
    assert torch.equal(guidance.cond[-1], torch.full((2,), 3.5))
    undistilled = backbone_for(schnell(tiny_family("flux").base))
    assert undistilled.guidance == "none" and len(undistilled.text_guidance(["a"], 3.5).cond) == 2  # text and pooled text only
    assert (flux.max_sequence_length, undistilled.max_sequence_length) == (512, 256)


def test_sdxl_takes_pooled_text_and_size_ids_and_zeros_as_unconditional(tiny_family) -> None:
    b = backbone_for(tiny_family("sdxl").base)
    context, pooled, time_ids = b.text(PROMPT)
    assert context.shape == (1, 77, 80) and pooled.shape == (1, 40)
    assert time_ids.tolist() == [[64, 64, 0, 0, 64, 64]]
    uncond = b.unconditional_text()
    assert not uncond[0].any() and not uncond[1].any() and torch.equal(uncond[2], time_ids)


def test_token_layouts_and_default_start_token_references(tiny_family) -> None:
    sd, sdxl, sd3, flux = (backbone_for(tiny_family(f).base) for f in FAMILIES)
    for clip_only in (sd, sdxl):
        layout = clip_only.token_layout("a raccoon")
        assert layout.reference == (0,) and layout.spans[0] == (1,)
    layout = sd3.token_layout("a raccoon")
    assert layout.reference == (0,)  # CLIP's start token, before the 256 T5 columns
    assert all(min(span) < 77 <= max(span) for span in layout.spans), "each word's CLIP and T5 columns"
    layout = flux.token_layout("a raccoon")
    assert layout.reference == (layout.end + 1,)  # T5's first padding token, after </s>
    assert flux.token_layout("a raccoon", reference="eos").reference == (layout.end,)
    with pytest.raises(ValueError, match="'clip_bos' needs clip tokens"):
        flux.token_layout("a raccoon", reference="clip_bos")


def test_attention_options_of_the_other_kind_are_refused_with_the_one_that_applies(tiny_family) -> None:
    with pytest.raises(ValueError, match="set attention_downsample"):
        InstDiffEdit(tiny_family("sdxl").base, attention_layers=[0])
    with pytest.raises(ValueError, match="set attention_layers"):
        InstDiffEdit(tiny_family("sd3").base, attention_downsample=2)
    with pytest.raises(ValueError, match=r"attention_layers=\[4\] must be indices 0-3"):
        InstDiffEdit(tiny_family("flux").base, attention_layers=[4])
    with pytest.raises(ValueError, match="'clip_bos' needs clip tokens"):
        InstDiffEdit(tiny_family("flux").base, reference="clip_bos")


def test_the_maps_live_where_each_family_attends_to_text(tiny_family) -> None:
    """SD, SDXL: cross-attention at 16 x 16 of a 32 x 32 latent; SD 3.x, FLUX.1: the 16 x 16 token grid."""
    for family in FAMILIES:
        b = backbone_for(tiny_family(family).base)
        guidance = b.text_guidance([PROMPT] * 2, 7.5)
        x = _noise(b, rows=2)
        with b.capture_text_attention(AttentionOptions()) as store:
            b.guided_prediction(x, b.timesteps(10, 0.5)[0], guidance)
            maps = store.take()
        assert maps.shape == (2, 16, 16, guidance.cond[0].shape[1]), family


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_instant_masks_read_only_the_prompts_columns_and_are_those_of_a_capture_of_every_column(tiny_family, family: str, monkeypatch) -> None:
    import PIL.Image

    from instdiffedit.backbones import joint

    editor = InstDiffEdit(tiny_family(family).base, num_inference_steps=3)
    image = PIL.Image.new("RGB", (64, 64), (200, 40, 40))
    layout = editor.backbone.token_layout(PROMPT)
    kept = []
    real = joint.capture_joint_attention

    def recording(*args, **kwargs):
        kept.append(kwargs["columns"])
        return real(*args, **kwargs)

    monkeypatch.setattr(joint, "capture_joint_attention", recording)
    limited = editor.edit(image, target=PROMPT, generator=torch.Generator().manual_seed(0))
    assert kept == [layout.extent] and layout.extent < editor.backbone.text_parts()[-1].offset + editor.backbone.text_parts()[-1].length
    monkeypatch.setattr(joint, "capture_joint_attention", lambda *args, **kwargs: real(*args, **{**kwargs, "columns": None}))
    every = editor.edit(image, target=PROMPT, generator=torch.Generator().manual_seed(0))
    assert torch.equal(limited.mask, every.mask) and torch.equal(limited.mask_history, every.mask_history)
    assert limited.image.tobytes() == every.image.tobytes()


def test_sd_only_methods_are_refused_on_other_families(tiny_family) -> None:
    for method in (DiffEditDDIM, LeditsPP):
        assert method.capabilities.families == {"sd"}
        with pytest.raises(ValueError, match=f"{method.__name__} runs on SD 1.x/2.x models only, not on SDXL"):
            method(tiny_family("sdxl").base)
    check_family(InstDiffEdit, "flux")
    with pytest.raises(ValueError, match="Unknown model family 'sd4'"):
        check_family(InstDiffEdit, "sd4")


def test_an_inpainting_twin_of_another_family_is_refused(tiny_family) -> None:
    with pytest.raises(ValueError, match="inpainting model is a FLUX.1 model and the base model a SDXL one"):
        InstDiffEdit(tiny_family("sdxl").base, tiny_family("flux").inpaint)


def test_a_flow_matching_velocity_converts_to_the_noise_that_made_the_sample(tiny_family) -> None:
    b = backbone_for(tiny_family("sd3").base)
    t = b.timesteps(10, 0.5)[2]
    x0, eps = torch.randn(2, 1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.noise_estimate(eps - x0, b.add_noise(x0, eps, t), t), eps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("family", "scheduler"),
    [("sd", "LMSDiscreteScheduler"), ("sd", "PNDMScheduler"), ("sd", "DDIMScheduler"), ("sdxl", "EulerDiscreteScheduler"), ("flux", None)],
)
@pytest.mark.parametrize("at", ["t", "t-1"])
def test_the_renoised_trajectory_is_the_original_noised_to_each_steps_timestep_bit_for_bit(tiny_family, family: str, scheduler: str | None, at: str) -> None:
    """All steps are noised in one scheduler call; each entry is what noising to its timestep alone gives."""
    b = backbone_for(tiny_family(family).base, scheduler=scheduler)
    timesteps = b.timesteps(10, 0.5)
    z0 = _noise(b)
    noise = _noise(b, rows=3) * 0.5
    trajectory = b.noised_trajectory(z0, noise, timesteps, at=at)
    targets = list(timesteps) if at == "t" else list(timesteps[1:])
    expected = [b.add_noise(z0, noise, t) for t in targets] + ([z0.expand_as(noise)] if at == "t-1" else [])
    assert len(trajectory) == len(timesteps)
    assert all(torch.equal(ours, alone) for ours, alone in zip(trajectory, expected, strict=True))


@pytest.mark.parametrize(
    ("family", "scheduler"),
    [("sd", "LMSDiscreteScheduler"), ("sd", "PNDMScheduler"), ("sd", "DDIMScheduler"), ("sdxl", "EulerDiscreteScheduler"), ("flux", None)],
)
def test_noising_is_the_schedulers_own_bit_for_bit_with_no_host_look_up_of_a_timestep(tiny_family, family: str, scheduler: str | None, monkeypatch) -> None:
    b = backbone_for(tiny_family(family).base, scheduler=scheduler)
    timesteps = b.timesteps(10, 0.5)
    z0, noise = _noise(b), _noise(b, rows=len(timesteps))
    own = b.schedule.scheduler
    if family == "flux":
        expected = own.scale_noise(z0.expand_as(noise), timesteps, noise)
    else:
        expected = own.add_noise(z0.expand_as(noise), noise, timesteps)

    def host_look_up(*args, **kwargs):
        raise AssertionError("a timestep was looked up on the host")

    monkeypatch.setattr(type(own), "index_for_timestep", host_look_up, raising=False)
    assert torch.equal(b.add_noise(z0, noise, timesteps), expected)


def test_schedulers_of_the_other_kind_are_refused(tiny_family) -> None:
    with pytest.raises(ValueError, match="cannot run flow matching"):
        backbone_for(tiny_family("flux").base, scheduler="LMSDiscreteScheduler")
    with pytest.raises(ValueError, match="is a flow-matching scheduler"):
        backbone_for(tiny_family("sdxl").base, scheduler="FlowMatchEulerDiscreteScheduler")


def test_flux_position_ids_are_the_pipelines_made_on_the_device() -> None:
    like = torch.zeros(1, dtype=torch.bfloat16)
    assert torch.equal(image_ids(3, 5, like), FluxPipeline._prepare_latent_image_ids(1, 3, 5, "cpu", torch.bfloat16))


def test_an_sdxl_vae_that_overflows_in_half_precision_is_kept_in_float32(_private_cache, tiny_family) -> None:
    from benchmarks.models.families import load_family
    from benchmarks.models.tiny_families import TINY_FAMILY_VERSION

    tiny_family("sdxl")
    pipes = load_family("sdxl", str(_private_cache / f"tiny-sdxl-{TINY_FAMILY_VERSION}" / "base"), resolution=64, device="cpu", dtype="float16")
    assert pipes.base.unet.dtype == torch.float16 and pipes.base.vae.dtype == torch.float32
    assert pipes.base.default_sample_size == 32


@pytest.mark.parametrize("family", ["sd", "sd3"])
def test_the_vaes_shift_is_used_where_the_familys_pipelines_use_it(tiny_family, item, family: str) -> None:
    # SD 1.x/2.x and SDXL pipelines scale the VAE's latents and ignore any shift_factor in its
    # config (the toy world's VAE carries one for its DiT); SD 3.x and FLUX.1 pipelines shift first.
    pipe = tiny_family(family).base
    saved = pipe.vae.config.shift_factor
    pipe.vae.register_to_config(shift_factor=0.25)
    try:
        b = backbone_for(pipe)
        mode = pipe.vae.encode(b.preprocess(item.image)).latent_dist.mode()
        shift = 0.25 if family == "sd3" else 0.0
        torch.testing.assert_close(b.encode(item.image), ((mode - shift) * pipe.vae.config.scaling_factor).to(b.dtype))
    finally:
        pipe.vae.register_to_config(shift_factor=saved)
