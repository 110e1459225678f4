"""The shipped toy model (models/toy): loads through diffusers, fits its budget, and its classifier sees objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline

from benchmarks.models import ModelUnavailableError
from benchmarks.toy.model import TOY_MODEL, load_classifier, toy_pipelines
from benchmarks.toy.render import render, sample_layouts
from benchmarks.toy.train import autoencoded, object_crops


def test_the_shipped_weights_stay_within_30_mb() -> None:
    weights = [p for p in TOY_MODEL.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", ".txt")]
    assert sum(p.stat().st_size for p in weights) <= 30e6


def test_diffusers_loads_the_folder_and_generates_a_64_px_image() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(TOY_MODEL, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a gray background", num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_the_config_loader_gives_a_base_model_and_no_inpainting_model() -> None:
    pipes = toy_pipelines(device="cpu")
    assert pipes.inpaint is None and pipes.base.unet.config.sample_size == 16


def test_a_missing_model_folder_is_one_sentence_naming_it_and_the_training_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"python -m benchmarks\.toy\.train --out") as error:
        toy_pipelines(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_the_classifier_recognises_rendered_and_autoencoded_objects() -> None:
    layout = sample_layouts(128, torch.Generator().manual_seed(7), max_objects=1)
    images, masks = render(layout)
    classifier = load_classifier()
    vae = toy_pipelines(device="cpu").base.vae
    for x in (images, autoencoded(vae, images)):
        colour, shape = classifier(object_crops(x, masks[:, 0]))
        right = (colour.argmax(1) == layout.colour[:, 0]) & (shape.argmax(1) == layout.shape[:, 0])
        assert right.float().mean() >= 0.9
