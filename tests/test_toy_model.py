"""The shipped toy models (models/toy and its twin models/toy-inpaint): load through diffusers, fit their budget, and the classifier sees objects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline

import benchmarks.methods
from benchmarks.models.families import WITHOUT_T5
from benchmarks.models.loading import ModelUnavailableError
from benchmarks.toy.classifier import object_crops
from benchmarks.toy.model import TOY_MODEL, load_classifier, toy_pipelines
from benchmarks.toy.render import render, sample_layouts
from benchmarks.toy.training.evaluation import autoencoded

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_weights_of_the_three_folders_stay_within_45_mb_stored_once() -> None:
    folders = [TOY_MODEL, *(TOY_MODEL.parent / f"toy-{kind}" for kind in ("inpaint", "dit"))]
    files = [p for folder in folders for p in folder.rglob("*") if p.suffix in (".safetensors", ".json", ".txt")]
    assert sum(p.stat().st_size for p in files if p.is_file() and not any(parent.is_symlink() for parent in (p, *p.parents))) <= 45e6


def test_diffusers_loads_the_folder_and_generates_a_64_px_image() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(TOY_MODEL, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a gray background", num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_the_config_loader_gives_the_base_model_and_its_inpainting_twin_sharing_their_autoencoder() -> None:
    pipes = toy_pipelines(device="cpu")
    assert pipes.base.unet.config.sample_size == 16 and pipes.inpaint.unet.config.in_channels == 9
    settings = [{k: v for k, v in pipe.vae.config.items() if k != "_name_or_path"} for pipe in (pipes.inpaint, pipes.base)]
    assert settings[0] == settings[1]
    assert all(torch.equal(a, b) for a, b in zip(pipes.inpaint.vae.state_dict().values(), pipes.base.vae.state_dict().values()))


def test_without_the_twin_the_config_loader_gives_the_base_model_alone() -> None:
    assert toy_pipelines(inpaint=False, device="cpu").inpaint is None


def test_a_missing_model_folder_is_one_sentence_naming_it_and_the_training_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"python -m benchmarks\.toy\.training\.train --out") as error:
        toy_pipelines(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_the_classifier_recognises_rendered_and_autoencoded_objects() -> None:
    layout = sample_layouts(128, torch.Generator().manual_seed(7), max_objects=1)
    images, masks = render(layout)
    classifier = load_classifier()
    vae = toy_pipelines(inpaint=False, device="cpu").base.vae
    for x in (images, autoencoded(vae, images)):
        colour, shape = classifier(object_crops(x, masks[:, 0]))
        right = (colour.argmax(1) == layout.colour[:, 0]) & (shape.argmax(1) == layout.shape[:, 0])
        assert right.float().mean() >= 0.9


def test_the_shipped_dit_loads_through_stable_diffusion_3_s_pipeline_and_generates_a_64_px_image() -> None:
    pipe = StableDiffusion3Pipeline.from_pretrained(TOY_MODEL.parent / "toy-dit", torch_dtype=torch.float32, **WITHOUT_T5)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a gray background", num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64) and pipe.transformer.config.patch_size == 1


KNOWN_FAILURES = {"toy": {"ledits_pp": "ValueError: torch.cat(): expected a non-empty list of Tensors"}}
"""Methods that fail on a shipped toy model, with their error: LEDITS++ on the toy UNet (found by the test below; remove once fixed)."""


def _methods_on(family: str) -> list[str]:
    """The family's methods; compositions are left out (tests/test_compose.py pins them to the methods they equal)."""
    return [
        m.name for m in benchmarks.methods.all_methods() if m.role != "composition" and family in benchmarks.methods.editor_class(m.name).capabilities.families
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "family"), [("toy", "sd"), ("toy_dit", "sd3")])
def test_every_method_of_its_family_runs_on_the_shipped_toy_models_through_run_py(tmp_path: Path, model: str, family: str) -> None:
    methods = _methods_on(family)
    result = subprocess.run(
        [sys.executable, "run.py", "-m", f"model={model}", "dataset.n=1", "logger=none", f"paths.output_root={tmp_path}", f"method={','.join(methods)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    known = KNOWN_FAILURES.get(model, {})
    # A configuration whose every item failed makes the sweep exit with 1, naming it.
    assert result.returncode == (1 if known else 0), result.stderr[-3000:]
    assert all(f"({method} " in result.stderr for method in known), result.stderr[-3000:]
    rows = [json.loads(line) for path in tmp_path.glob(f"{model}/toy_shapes/*/*/results.jsonl") for line in path.read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == sorted(methods)
    failed = {r["method"]: r.get("error") for r in rows if r["status"] != "ok"}
    assert failed == known
