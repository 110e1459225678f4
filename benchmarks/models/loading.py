"""Loading Stable Diffusion pipelines from the Hugging Face hub or from local folders.

Every model the harness uses goes through :func:`load_pretrained`, the tiny offline test
model included, so the code path exercised by the tests is the one real runs take.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from benchmarks.devices import resolve_device, resolve_dtype
from benchmarks.hub import (
    NOT_CACHED_OFFLINE,
    NotOnHub,
    cached_file,
    cached_or_downloaded,
    hub_offline,
)
from instdiffedit.backbones import denoiser_of
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath, accelerate, check_fast_path

SD14_BASE = "CompVis/stable-diffusion-v1-4"
SD_INPAINT = "stable-diffusion-v1-5/stable-diffusion-inpainting"

SPEED_OPTIONS = ("fast_path", "channels_last")
"""Model config keys that change speed, never results: left out of a run's identity (its config hash)."""


@dataclass
class Pipelines:
    """The base text-to-image pipeline and the optional inpainting pipeline of one model."""

    base: StableDiffusionPipeline
    inpaint: StableDiffusionInpaintPipeline | None


class ModelUnavailableError(RuntimeError):
    """A model could neither be found locally nor downloaded; the message says how to fix it."""


def load_pretrained(
    base: str,
    inpaint: str | None = None,
    *,
    family: str = "sd",
    device: str = "auto",
    dtype: str = "auto",
    inpaint_dtype: str | None = None,
    variant: str | None = None,
    base_key: str = "model.base",
    inpaint_key: str = "model.inpaint",
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> Pipelines:
    """Load the base (and optionally the inpainting) pipeline from hub ids or local folders.

    ``dtype`` is the base model's precision (see :func:`benchmarks.devices.resolve_dtype`), ``inpaint_dtype`` the
    inpainting model's (default: the same). The authors ran the base model in float32 and the
    inpainting model in float16: ``dtype="float32", inpaint_dtype="float16"``.
    ``base_key``/``inpaint_key`` are the config keys the names came from; they appear in error
    messages so the user knows which setting to change. ``fast_path`` and ``channels_last`` are
    applied by :func:`optimize`. ``family`` is the model family the config declares (``model.family``):
    these are SD 1.x/2.x pipelines; the other families load with
    :func:`benchmarks.models.families.load_family`.
    """
    if family != "sd":
        raise ValueError(
            f"model.family={family!r}, but load_pretrained loads SD 1.x/2.x pipelines (family sd); load the "
            "other families with _target_: benchmarks.models.families.load_family."
        )
    check_speed_options(fast_path)
    torch_device = resolve_device(device)
    base_dtype = resolve_dtype(dtype, torch_device)
    options = {
        "torch_dtype": base_dtype,
        "variant": variant,
        "use_safetensors": True,
        "safety_checker": None,
        "requires_safety_checker": False,
    }
    base_pipe = load_pipeline(StableDiffusionPipeline, base, base_key, options)
    inpaint_pipe = None
    if inpaint is not None:
        inpaint_options = {**options, "torch_dtype": base_dtype if inpaint_dtype is None else resolve_dtype(inpaint_dtype, torch_device)}
        inpaint_pipe = load_pipeline(StableDiffusionInpaintPipeline, inpaint, inpaint_key, inpaint_options)
    for pipe in (base_pipe, inpaint_pipe):
        if pipe is not None:
            pipe.to(torch_device)
            pipe.set_progress_bar_config(disable=True)
    return optimize(Pipelines(base=base_pipe, inpaint=inpaint_pipe), fast_path=fast_path, channels_last=channels_last)


def check_speed_options(fast_path: str) -> None:
    """A ValueError naming ``model.fast_path`` if it is not a fast path."""
    try:
        check_fast_path(fast_path)
    except ValueError as error:
        raise ValueError(f"model.fast_path: {error}") from None


def optimize(pipes: Pipelines, *, fast_path: FastPath = DEFAULT_FAST_PATH, channels_last: bool = False) -> Pipelines:
    """Speed-ups that keep results (see :func:`instdiffedit.fast_paths.accelerate`), in place.

    ``fast_path`` applies to the denoisers, UNets or transformers (the denoising loops' cost);
    ``channels_last`` to them and the VAEs. With the defaults, the pipelines are left untouched.
    """
    if fast_path == DEFAULT_FAST_PATH and not channels_last:
        return pipes
    for pipe in (pipes.base, pipes.inpaint):
        if pipe is None:
            continue
        accelerate(denoiser_of(pipe), fast_path=fast_path, channels_last=channels_last)
        if channels_last:
            accelerate(pipe.vae, channels_last=True)
    return pipes


def load_pipeline(pipeline_cls: type, name: str, key: str, options: dict) -> StableDiffusionPipeline:
    """Load from a local folder, else from the hub cache, else (when online) from the hub.

    ``pipeline_cls`` is any diffusers pipeline class; ``options`` go to its ``from_pretrained``.
    ``key`` is the config key ``name`` came from, for the one-sentence error when it cannot be had.
    """
    if _is_local_path(name):
        return _from_pretrained(pipeline_cls, str(_checked_folder(name, key)), **options)
    try:
        return cached_or_downloaded(lambda local: _from_pretrained(pipeline_cls, name, local_files_only=local, **options))
    except NotOnHub as missing:
        raise _unavailable(name, key, missing.reason) from None


def check_model_source(name: str, key: str) -> None:
    """Raise :class:`ModelUnavailableError` now, before anything runs, for a model that cannot load:
    a local folder that is missing or holds no pipeline, or a hub id that is not in the cache
    while the hub is off (``HF_HUB_OFFLINE``)."""
    if _is_local_path(name):
        _checked_folder(name, key)
    elif hub_offline() and cached_file(name, "model_index.json") is None:
        raise _unavailable(name, key, NOT_CACHED_OFFLINE)


def _unavailable(name: str, key: str, reason: str) -> ModelUnavailableError:
    return ModelUnavailableError(f"Could not load {name!r} ({reason}); download it with `hf download {name}` or set {key}=/path/to/local/folder.")


def _from_pretrained(pipeline_cls: type, name: str, **kwargs) -> StableDiffusionPipeline:
    # diffusers >= 0.42 renamed torch_dtype to dtype; keep the name every supported version
    # accepts and silence only that rename's warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
        return pipeline_cls.from_pretrained(name, **kwargs)


def _is_local_path(name: str) -> bool:
    """Whether ``name`` means a folder: it exists, or it cannot be a hub repo id."""
    if Path(name).expanduser().exists():
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def _checked_folder(name: str, key: str) -> Path:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ModelUnavailableError(f"Model folder {str(folder)!r} given by {key} does not exist.")
    if not (folder / "model_index.json").is_file():
        raise ModelUnavailableError(
            f"Model folder {str(folder)!r} given by {key} has no model_index.json (expected a diffusers pipeline saved with save_pretrained)."
        )
    return folder
