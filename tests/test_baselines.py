"""The baselines on the tiny model: same interface, faithful UNet budgets, sane edge cases."""

from __future__ import annotations

from types import SimpleNamespace

import PIL.Image
import pytest
import torch
from diffusers import LMSDiscreteScheduler

from baselines import DiffEdit, OracleInpaint, SDEdit
from instdiffedit import InstDiffEdit
from instdiffedit.backbones import StableDiffusion


def test_diffedit_spends_noises_x_texts_x_steps_x_cfg_on_its_mask(tiny, item, seeded) -> None:
    editor = DiffEdit(tiny.base, None, num_noises=3, num_inference_steps=10, inpaint_steps=4)
    result = editor.edit(item.image, target=item.target, source=item.source, generator=seeded(11))
    assert result.denoiser_evals == 3 * 2 * 5 * 2 + 4 * 2  # mask runs + latent-blend inpainting
    assert result.image.size == item.image.size
    assert result.mask.shape == (item.image.height, item.image.width)
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}
    assert result.timings["mask"] > 0 and result.timings["inpaint"] > 0


@pytest.mark.slow
def test_diffedit_at_the_paper_defaults_spends_1000_evaluations_on_the_mask(tiny, item, seeded) -> None:
    editor = DiffEdit(tiny.base, None, output="inpaint", inpaint_steps=1)
    result = editor.edit(item.image, target=item.target, source=item.source, generator=seeded(11))
    assert result.denoiser_evals == 10 * 2 * 25 * 2 + 1 * 2


def test_diffedit_batched_and_one_by_one_give_the_same_mask(tiny, item, seeded) -> None:
    kwargs = dict(num_noises=4, num_inference_steps=10, output="decode")
    batched = DiffEdit(tiny.base, unet_batch_size=16, **kwargs)
    one_by_one = DiffEdit(tiny.base, unet_batch_size=2, **kwargs)
    a = batched.difference_map(item.image, item.source, item.target, seeded(11))
    b = one_by_one.difference_map(item.image, item.source, item.target, seeded(11))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    mask_a = batched.first_stage(item.image, target=item.target, source=item.source, mask=None, generator=seeded(11)).mask
    mask_b = one_by_one.first_stage(item.image, target=item.target, source=item.source, mask=None, generator=seeded(11)).mask
    assert torch.equal(mask_a, mask_b)


def test_sdedit_runs_the_last_half_of_the_schedule_and_has_no_mask(tiny, item, seeded) -> None:
    result = SDEdit(tiny.base).edit(item.image, target=item.target, generator=seeded(11))
    assert result.denoiser_evals == 25 * 2
    assert result.mask is None and result.soft_mask is None
    assert result.image.size == item.image.size and result.timings["edit"] > 0


def test_oracle_with_an_empty_mask_returns_the_input_up_to_the_autoencoder(tiny, item, seeded) -> None:
    editor = OracleInpaint(tiny.base, None, inpaint_steps=4)
    d = editor.backbone
    work = item.image.resize((d.resolution, d.resolution))
    empty = torch.zeros(work.height, work.width)
    result = editor.edit(work, target=item.target, mask=empty, generator=seeded(11))
    assert result.image.tobytes() == d.decode(d.encode(work))[0].tobytes()
    assert result.denoiser_evals == 4 * 2


def test_oracle_with_a_full_mask_changes_the_image(tiny, item, seeded) -> None:
    for inpaint_pipe in (None, tiny.inpaint):
        editor = OracleInpaint(tiny.base, inpaint_pipe, inpaint_steps=4)
        d = editor.backbone
        work = item.image.resize((d.resolution, d.resolution))
        full = torch.ones(work.height, work.width)
        result = editor.edit(work, target=item.target, mask=full, generator=seeded(11))
        assert result.image.tobytes() != d.decode(d.encode(work))[0].tobytes()
        assert torch.equal(result.mask, full)


def test_oracle_without_a_ground_truth_mask_says_so(tiny, item, seeded) -> None:
    with pytest.raises(ValueError, match="ground-truth mask"):
        OracleInpaint(tiny.base).edit(item.image, target=item.target, generator=seeded(11))


def test_the_no_mask_ablation_changes_the_edit_but_still_reports_the_mask(tiny, item, seeded) -> None:
    kwargs = dict(num_inference_steps=10, output="decode")
    guided = InstDiffEdit(tiny.base, **kwargs).edit(item.image, target=item.target, generator=seeded(11))
    unguided = InstDiffEdit(tiny.base, mask_guidance=False, **kwargs).edit(item.image, target=item.target, generator=seeded(11))
    assert unguided.denoiser_evals == guided.denoiser_evals == 5 * 6
    assert unguided.mask is not None and unguided.mask.shape == guided.mask.shape
    assert unguided.image.tobytes() != guided.image.tobytes()


def test_diffedit_thresholds_the_blurred_map_without_a_second_min_max(tiny, monkeypatch) -> None:
    """The authors: min-max, blur, > 0.3. A lone hot pixel blurs to 0.16 and stays out of the mask."""
    difference = torch.zeros(32, 32)
    difference[4:20, 4:20] = 0.5  # a broad region of half the peak difference
    difference[26, 26] = 1.0  # one hot pixel
    editor = DiffEdit(tiny.base, output="decode")
    monkeypatch.setattr(editor, "difference_map", lambda *args: difference)
    stage = editor.first_stage(PIL.Image.new("RGB", (64, 64)), target="b", source="a", mask=None, generator=None)
    assert stage.mask[26, 26] == 0 and stage.mask[12, 12] == 1
    assert stage.soft_mask.max() < 0.6  # not renormalised to 1 after the blur


class _AsVPrediction(torch.nn.Module):
    """An epsilon UNet reparametrised as a v-prediction one: v = (eps - sqrt(1 - a_t) x_t) / sqrt(a_t)."""

    def __init__(self, unet: torch.nn.Module, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.inner, self.config, self.alphas_cumprod = unet, unet.config, alphas_cumprod

    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)

    def forward(self, sample: torch.Tensor, t: torch.Tensor, encoder_hidden_states: torch.Tensor) -> SimpleNamespace:
        eps = self.inner(sample, t, encoder_hidden_states=encoder_hidden_states).sample
        a = self.alphas_cumprod[int(t)]
        return SimpleNamespace(sample=(eps - (1 - a).sqrt() * sample) / a.sqrt())


def _with_prediction(base, prediction: str) -> SimpleNamespace:
    """The base pipeline's parts with a v-prediction twin of its UNet; the last step at t = 99, not 0."""
    scheduler = LMSDiscreteScheduler.from_config(base.scheduler.config, timestep_spacing="trailing", prediction_type=prediction)
    unet = base.unet if prediction == "epsilon" else _AsVPrediction(base.unet, scheduler.alphas_cumprod)
    parts = ("vae", "tokenizer", "vae_scale_factor", "encode_prompt", "image_processor")
    return SimpleNamespace(unet=unet, scheduler=scheduler, **{name: getattr(base, name) for name in parts})


@pytest.mark.parametrize("scheduler", ["LMSDiscreteScheduler", "DDIMScheduler"])
def test_diffedit_on_a_v_prediction_model_compares_noise_estimates(tiny, item, scheduler: str, seeded) -> None:
    maps = []
    for prediction in ("epsilon", "v_prediction"):
        backbone = StableDiffusion(_with_prediction(tiny.base, prediction), scheduler=scheduler)
        editor = DiffEdit(backbone, num_noises=2, num_inference_steps=10, output="decode")
        maps.append(editor.difference_map(item.image, item.source, item.target, seeded(11)))
    torch.testing.assert_close(maps[1], maps[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("scheduler", ["LMSDiscreteScheduler", "DDIMScheduler"])
def test_a_v_prediction_converts_to_the_noise_that_made_the_sample(tiny, scheduler: str) -> None:
    d = StableDiffusion(_with_prediction(tiny.base, "v_prediction"), scheduler=scheduler)
    t = d.timesteps(10, 0.5)[2]
    x0, eps = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    a = d.schedule.scheduler.alphas_cumprod[int(t)]
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(d.noise_estimate(v, d.add_noise(x0, eps, t), t), eps, rtol=1e-4, atol=1e-5)
