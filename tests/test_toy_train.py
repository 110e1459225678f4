"""The toy models' training command: sizes, the pipelines' conditioning, and a short run whose three folders diffusers loads."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import (
    StableDiffusion3Pipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from benchmarks.models.families import WITHOUT_T5
from benchmarks.models.tiny import clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer
from benchmarks.toy.classifier import object_crops
from benchmarks.toy.training.config import SMOKE_STEPS, TrainConfig, denoiser_targets
from benchmarks.toy.training.denoisers import inpainting_condition, noised, sd3_conditioning
from benchmarks.toy.training.evaluation import EvalSettings
from benchmarks.toy.training.nets import build_dit, build_text_encoder, build_unet, build_vae
from benchmarks.toy.training.steps import Clock, Trainer, run_loop
from benchmarks.toy.training.train import (
    Checkpoint,
    assemble_pipelines,
    caption_targets,
    finetune_twin,
    projected_full_run,
    train,
)
from instdiffedit.attention import default_downsample

TINY = replace(
    TrainConfig(),
    batch_size=4,
    vae_batch_size=4,
    dit_batch_size=2,
    pool_batches=2,
    text_steps=3,
    vae_steps=3,
    classifier_steps=2,
    unet_steps=3,
    inpaint_steps=3,
    dit_steps=3,
    classifier_pool=8,
    text_hidden=32,
    text_layers=2,
    text_projection=16,
    vae_channels=(8, 16, 16),
    unet_channels=(8, 16, 32),
    dit_layers=2,
    dit_heads=2,
    dit_head_dim=8,
)
QUICK = EvalSettings(per_prompt=1, sd_steps=1, dit_steps=1, inpaint_edits=2, inpaint_steps=1, autoencoder_scenes=4, classifier_scenes=4, condition_scenes=4)
CPU = torch.device("cpu")


def tiny_pipelines():
    torch.manual_seed(0)
    text_encoder = build_text_encoder(TINY.text_hidden, TINY.text_layers, TINY.text_projection).eval()
    vae = build_vae(TINY.vae_channels).eval()
    vae.register_to_config(scaling_factor=0.5, shift_factor=0.1)
    unets = [build_unet(TINY.unet_channels, 1, TINY.text_hidden, in_channels=c).eval() for c in (4, 9)]
    dit = build_dit(TINY.dit_layers, TINY.dit_heads, TINY.dit_head_dim, TINY.text_hidden, TINY.text_projection).eval()
    return assemble_pipelines(vae, text_encoder, clip_tokenizer(), *unets, dit)


def test_the_fp16_weights_of_the_three_pipelines_fit_45_mb() -> None:
    config = TrainConfig()
    models = [
        build_vae(config.vae_channels),
        build_text_encoder(config.text_hidden, config.text_layers, config.text_projection),
        build_unet(config.unet_channels, config.unet_layers_per_block, config.text_hidden),
        build_unet(config.unet_channels, config.unet_layers_per_block, config.text_hidden, in_channels=9),
        build_dit(config.dit_layers, config.dit_heads, config.dit_head_dim, config.text_hidden, config.text_projection),
    ]
    tokenizer_files = 3.6e6  # tokenizer.json + tokenizer_config.json, stored once
    assert sum(p.numel() for m in models for p in m.parameters()) * 2 + tokenizer_files < 45e6


def test_identical_captions_are_all_positives_of_the_contrastive_loss() -> None:
    ids = torch.tensor([[1, 2], [1, 3], [1, 2]])
    assert torch.equal(caption_targets(ids), torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]))


def test_instdiffedit_reads_the_toy_unets_16x16_cross_attention() -> None:
    config = TrainConfig()
    assert default_downsample(build_unet(config.unet_channels, 1, config.text_hidden)) == 1  # 16 x 16 latents: attention at 16 and 8


def test_object_crops_frame_the_masked_object() -> None:
    images = torch.zeros(1, 3, 64, 64)
    images[0, 0, 10:20, 40:50] = 1.0
    mask = images[:, 0] > 0
    crop = object_crops(images, mask, pad=0.0)
    assert crop.shape == (1, 3, 32, 32) and crop[0, 0].mean() > 0.8


def test_the_dit_is_trained_on_what_stable_diffusion_3_s_pipeline_feeds_it() -> None:
    _, _, sd3 = tiny_pipelines()
    prompts = ["a red circle on a gray background", ""]
    embeds, _, pooled, _ = sd3.encode_prompt(prompts, prompts, prompts, do_classifier_free_guidance=False)
    with torch.no_grad():
        output = sd3.text_encoder(CaptionTokenizer(sd3.tokenizer)(prompts), output_hidden_states=True)
    ours = sd3_conditioning(output.hidden_states[-2], output.text_embeds)
    assert torch.equal(ours[0], embeds) and torch.equal(ours[1], pooled)


def test_the_twin_is_trained_on_what_the_inpainting_pipeline_feeds_its_extra_channels() -> None:
    _, inpaint, _ = tiny_pipelines()
    vae = inpaint.vae
    with torch.no_grad():  # an almost deterministic posterior (std e^-15), so the pipeline's sample and ours agree
        vae.quant_conv.weight[4:].zero_()
        vae.quant_conv.bias[4:].fill_(-30.0)
    images = torch.rand(1, 3, 64, 64)
    masks = torch.zeros(1, 1, 64, 64)
    masks[..., 10:37, 20:50] = 1.0
    seen = []
    inpaint.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0][:1, 4:].clone()))
    inpaint(prompt="a red circle", image=images, mask_image=masks, num_inference_steps=1, guidance_scale=1.0, output_type="pt")
    assert torch.allclose(seen[0], inpainting_condition(vae, images, masks), atol=1e-4)


def test_offset_noise_moves_each_channel_s_mean_and_leaves_its_spatial_spread() -> None:
    alphas = torch.linspace(0.99, 0.01, 1000)
    z0 = torch.zeros(512, 4, 16, 16)
    torch.manual_seed(0)
    _, _, plain = noised(alphas, z0)
    torch.manual_seed(0)
    _, _, offset = noised(alphas, z0, offset=0.5)
    means = offset.mean((2, 3))
    assert means.std().item() == pytest.approx((0.5**2 + 1 / 256) ** 0.5, rel=0.05)
    assert plain.mean((2, 3)).std().item() == pytest.approx(1 / 16, rel=0.05)
    assert torch.allclose(offset - means[..., None, None], plain - plain.mean((2, 3), keepdim=True), atol=1e-5)


def test_a_negative_noise_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="twin_noise_offset"):
        TrainConfig(twin_noise_offset=-0.1)


@pytest.mark.slow
def test_a_short_training_run_writes_three_folders_their_pipelines_load_and_an_archive(tmp_path: Path) -> None:
    out = tmp_path / "models" / "toy"
    report = train(out, TINY, CPU, evaluation=QUICK, archive_path=tmp_path / "toy.tar", checkpoint_dir=tmp_path / "checkpoint")
    twin, dit = out.parent / "toy-inpaint", out.parent / "toy-dit"
    base = StableDiffusionPipeline.from_pretrained(out, torch_dtype=torch.float32)
    inpaint = StableDiffusionInpaintPipeline.from_pretrained(twin, torch_dtype=torch.float32)
    sd3 = StableDiffusion3Pipeline.from_pretrained(dit, torch_dtype=torch.float32, **WITHOUT_T5)
    image = base("a red circle", num_inference_steps=2, output_type="pt").images
    assert image.shape == (1, 3, 64, 64)
    assert inpaint("a red circle", image=image, mask_image=torch.ones(1, 1, 64, 64), num_inference_steps=2).images[0].size == (64, 64)
    assert sd3("a red circle", num_inference_steps=2).images[0].size == (64, 64)
    assert inpaint.unet.config.in_channels == 9 and sd3.vae.config.shift_factor == base.vae.config.shift_factor
    # Shared components are links to the base folder's, not copies.
    assert all((twin / c).is_symlink() for c in ("vae", "text_encoder", "tokenizer"))
    assert all((dit / c).is_symlink() for c in ("vae", "tokenizer", "tokenizer_2", "text_encoder_2"))
    assert (dit / "text_encoder" / "model-00001-of-00002.safetensors").is_symlink()
    saved = json.loads((out / "training.json").read_text())
    assert saved["steps_done"] == {"unet": 3, "inpaint": 3, "dit": 3} == report["steps_done"]
    for key in ("autoencoder", "generator_accuracy", "dit_generator_accuracy", "inpainting", "classifier_accuracy"):
        assert key in saved
    condition = saved["inpainting"]["condition_loss"]
    assert len(condition["with"]) == len(condition["without"]) == len(condition["timesteps"]) and condition["scenes"] == 4
    assert saved["autoencoder"]["reconstruction_psnr"] > 0 and set(saved["losses"]) >= {"vae", "text_encoder", "unet", "inpaint", "dit"}
    for folder in (out, twin, dit):
        assert (folder / "samples.png").is_file()
    # The archive restores the three folders, links included.
    restored = tmp_path / "restored"
    restored.mkdir()
    subprocess.run(f"cat {tmp_path}/toy.tar.* | tar -x -C {restored}", shell=True, check=True)
    assert sorted(p.name for p in restored.iterdir()) == ["toy", "toy-dit", "toy-inpaint"]
    assert (restored / "toy-inpaint" / "vae").is_symlink()
    StableDiffusion3Pipeline.from_pretrained(restored / "toy-dit", **WITHOUT_T5)
    # Resuming with more denoiser steps continues from the checkpoint.
    resumed = train(
        tmp_path / "again" / "toy", replace(TINY, unet_steps=5, inpaint_steps=5, dit_steps=5), CPU, evaluation=QUICK, resume=tmp_path / "checkpoint"
    )
    assert resumed["steps_done"] == {"unet": 5, "inpaint": 5, "dit": 5}
    assert "text_encoder" not in resumed["seconds"] and list(resumed["losses"]["unet"][0]) == saved["losses"]["unet"][0]
    # The twin alone can be fine-tuned again from a saved model's UNet: only its folder and its numbers change.
    unet_weights = (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    again = finetune_twin(out, replace(TINY, inpaint_steps=4), CPU, QUICK, archive_path=tmp_path / "twin.tar")
    assert again["steps_done"]["inpaint"] == 4 and again["twin"]["init"] == "base"
    assert json.loads((out / "training.json").read_text())["inpainting"] == again["inpainting"]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == unet_weights
    StableDiffusionInpaintPipeline.from_pretrained(twin, torch_dtype=torch.float32)
    assert list(tmp_path.glob("twin.tar.*"))
    # ... and the saved twin trained further: it starts from the twin, and the record counts both runs.
    twin_weights = (twin / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    further = finetune_twin(out, replace(TINY, inpaint_steps=3, twin_loss="epsilon"), CPU, QUICK, further=True)
    assert further["twin"]["init"] == "twin" and further["steps_done"]["inpaint"] == further["twin"]["steps"] == 4 + 3
    assert [(run["init"], run["steps"], run["config"]["twin_loss"]) for run in further["twin"]["runs"]] == [("base", 4, "min_snr"), ("twin", 3, "epsilon")]
    assert (twin / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() != twin_weights


def test_resuming_with_other_settings_than_the_step_counts_is_refused(tmp_path: Path) -> None:
    Checkpoint(tmp_path).save(TINY)
    with pytest.raises(ValueError, match="text_hidden"):
        Checkpoint(None).load(tmp_path, replace(TINY, text_hidden=48))
    Checkpoint(None).load(tmp_path, replace(TINY, unet_steps=99))


def test_the_smoke_run_s_projection_adds_the_untaken_steps_at_their_measured_times() -> None:
    full = TrainConfig()
    smoke = replace(full, **SMOKE_STEPS)
    report = {
        "config": {k: getattr(smoke, k) for k in SMOKE_STEPS},
        "seconds": {"text_encoder": 2.0, "autoencoder": 3.0, "classifier": 4.0, "denoisers": 5.0, "evaluation": 20.0, "total": 40.0},
        "ms_per_step": {"text_encoder": 10.0, "vae": 20.0, "denoisers": 40.0, "denoisers/unet": 10.0, "denoisers/inpaint": 12.0, "denoisers/dit": 8.0},
    }
    projection = projected_full_run(report, full)
    assert projection["seconds"]["autoencoder"] == pytest.approx(3.0 + 20.0 * (full.vae_steps - smoke.vae_steps) / 1e3, abs=0.1)
    assert projection["seconds"]["denoisers"] == pytest.approx(5.0 + 40.0 * (full.unet_steps - smoke.unet_steps) / 1e3, abs=0.1)
    assert projection["fixed_seconds"] == 26.0


def test_no_item_of_the_toy_splits_is_drawn_from_a_training_stream_s_seed() -> None:
    from benchmarks.toy.split import item_seed

    training = {TrainConfig().seed * 100 + stage for stage in range(1, 7)}  # the scene streams of the six stages
    assert not training & {item_seed(seed, index) for seed in (0, 7) for index in range(1000)}


def test_the_denoisers_learn_the_posterior_draw_or_its_mean_as_configured() -> None:
    posterior = DiagonalGaussianDistribution(torch.cat([torch.zeros(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)], dim=1))  # mean 0, std 1
    assert torch.equal(denoiser_targets(posterior, replace(TINY, denoiser_latents="mean")), torch.zeros(2, 4, 3, 3))
    assert denoiser_targets(posterior, replace(TINY, denoiser_latents="sample")).std() > 0.5
    with pytest.raises(ValueError, match="denoiser_latents must be one of sample, mean"):
        replace(TINY, denoiser_latents="mode")


class _SimulatedClock(Clock):
    """Time that advances only when a step says so: the first ``slow`` steps take 0.5 s, the others 0.25 s."""

    def __init__(self, slow: int) -> None:
        super().__init__(torch.device("cpu"))
        self.now, self.slow, self.steps = 0.0, slow, 0

    def tick(self) -> None:
        self.now += 0.5 if self.steps < self.slow else 0.25
        self.steps += 1

    def sync(self) -> float:
        return self.now

    def elapsed(self) -> float:
        return self.now


def test_the_deadline_cut_times_steps_past_the_slow_first_ones() -> None:
    clock = _SimulatedClock(slow=40)
    weight = torch.nn.Linear(2, 1)

    def loss(inputs: dict) -> torch.Tensor:
        clock.tick()
        return weight(inputs["x"]).pow(2).mean()

    trainer = Trainer("model", weight, loss, lr=1e-3, total=1000, warmup=10, graphed=False)
    info = run_loop([trainer], lambda: {"x": torch.ones(1, 2)}, {"model": lambda b: b}, clock, "model", deadline=100.0)
    # At step 150, 47.5 s have passed; 52.5 s are left at the 0.25 s of steps 50-150: 210 of the 850 steps left.
    assert info["deadline_cut"]["ms_per_step"] == 250.0
    assert abs(trainer.total - 360) <= 1 and trainer.done == trainer.total
    assert clock.now <= 100.0
