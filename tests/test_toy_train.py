"""The toy model's training command: architecture budget, crops, and a short end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline

from benchmarks.toy.train import TrainConfig, build_text_encoder, build_unet, build_vae, caption_targets, main, object_crops
from instdiffedit.attention import default_downsample


def test_the_weights_fit_the_30_mb_budget_in_fp16() -> None:
    config = TrainConfig()
    params = sum(p.numel() for m in (build_vae(), build_unet(config), build_text_encoder(config)) for p in m.parameters())
    tokenizer_files = 3.6e6  # vocab.json + merges.txt
    assert params * 2 + tokenizer_files < 30e6


def test_identical_captions_are_all_positives_of_the_contrastive_loss() -> None:
    ids = torch.tensor([[1, 2], [1, 3], [1, 2]])
    assert torch.equal(caption_targets(ids), torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]))


def test_instdiffedit_reads_the_toy_unets_16x16_cross_attention() -> None:
    assert default_downsample(build_unet(TrainConfig())) == 1  # 16 x 16 latents: attention at 16 and 8


def test_object_crops_frame_the_masked_object() -> None:
    images = torch.zeros(1, 3, 64, 64)
    images[0, 0, 10:20, 40:50] = 1.0
    mask = images[:, 0] > 0
    crop = object_crops(images, mask, pad=0.0)
    assert crop.shape == (1, 3, 32, 32) and crop[0, 0].mean() > 0.8


@pytest.mark.slow
def test_a_short_training_run_saves_a_pipeline_diffusers_loads(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "toy"), "--batch-size", "4", "--vae-steps", "2", "--text-steps", "2", "--unet-steps", "2", "--classifier-steps", "2", "--no-compile", "--eval-per-prompt", "1"])
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "toy", torch_dtype=torch.float32)
    image = pipe("a red circle on a gray background", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)
    assert (tmp_path / "toy" / "training.json").exists() and (tmp_path / "toy" / "samples.png").exists()
