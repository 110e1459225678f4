"""The toy world's trained models, shipped in the repository at ``models/toy`` and beside it.

``models/toy``: a 64 px text-to-image model of the Stable Diffusion 1.x architecture (diffusers
format) and, in ``classifier/``, the small CNN that recognises an object's colour and shape;
``models/toy-inpaint``: its inpainting twin (``StableDiffusionInpaintPipeline``), the toy's
SD-inpainting; ``models/toy-dit``: the SD3-architecture model (``StableDiffusion3Pipeline``, no
T5; :func:`toy_dit_pipelines`, ``model=toy_dit``). All
come from one ``python -m benchmarks.toy.training.train`` (see ``models/toy/README.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from benchmarks.models.families import FamilyPipelines, load_family
from benchmarks.models.loading import (
    ModelUnavailableError,
    Pipelines,
    load_pretrained,
)
from benchmarks.toy.classifier import ObjectClassifier
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath

TOY_MODEL = Path(__file__).resolve().parents[2] / "models" / "toy"


def sibling(out: Path, kind: str) -> Path:
    """``models/toy`` -> ``models/toy-inpaint`` / ``models/toy-dit``: where the twin and the DiT of a base folder live."""
    return out.parent / f"{out.name}-{kind}"


def toy_folder(folder: str | os.PathLike | None = None, kind: str | None = None) -> Path:
    """``folder`` (or the repository's ``models/toy``), or its ``kind`` sibling ("inpaint", "dit"); one sentence if it is not there."""
    base = Path(folder).expanduser() if folder is not None else TOY_MODEL
    path = sibling(base, kind) if kind is not None else base
    if not (path / "model_index.json").is_file():
        raise ModelUnavailableError(
            f"The toy model is not at {path} (it ships with the git repository, not with a wheel); "
            f"clone the repository, or train one with `python -m benchmarks.toy.training.train --out {base}` and set model.folder."
        )
    return path


def toy_pipelines(
    folder: str | os.PathLike | None = None,
    *,
    family: str = "sd",
    inpaint: bool = True,
    device: str = "auto",
    dtype: str = "auto",
    inpaint_dtype: str | None = None,
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> Pipelines:
    """The toy model as the base pipeline and its twin (``<folder>-inpaint``) as the inpainting pipeline,
    as SD 1.4 and SD-inpainting; ``inpaint=False`` leaves the twin out (methods then inpaint by latent blending)."""
    twin = str(toy_folder(folder, "inpaint")) if inpaint else None
    return load_pretrained(
        str(toy_folder(folder)),
        twin,
        family=family,
        device=device,
        dtype=dtype,
        inpaint_dtype=inpaint_dtype,
        base_key="model.folder",
        inpaint_key="model.folder",
        fast_path=fast_path,
        channels_last=channels_last,
    )


def toy_dit_pipelines(
    folder: str | os.PathLike | None = None,
    *,
    family: str = "sd3",
    device: str = "auto",
    dtype: str = "auto",
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> FamilyPipelines:
    """The toy DiT (``<folder>-dit``) as an SD 3.x model without T5, at its own 64 px; SD 3.x has no
    twin, so methods inpaint by latent blending with it."""
    if family != "sd3":
        raise ValueError(f"model.family={family!r}, but the toy DiT is an SD 3.x model; set model.family=sd3.")
    return load_family(
        family,
        str(toy_folder(folder, "dit")),
        None,
        t5=False,
        device=device,
        dtype=dtype,
        base_key="model.folder",
        fast_path=fast_path,
        channels_last=channels_last,
    )


def load_classifier(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> ObjectClassifier:
    """The toy model's object classifier (colour and shape of a 32 x 32 crop), in float32 and eval mode."""
    weights = toy_folder(folder) / "classifier" / "model.safetensors"
    if not weights.is_file():
        raise ModelUnavailableError(
            f"The toy model folder has no object classifier at {weights}; retrain it with "
            f"`python -m benchmarks.toy.training.train --out {weights.parents[1]} --classifier-only`."
        )
    classifier = ObjectClassifier()
    classifier.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(weights).items()})
    return classifier.to(device).eval().requires_grad_(False)
