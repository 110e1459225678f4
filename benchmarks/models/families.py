"""Loading SDXL, SD 3.x, FLUX.1 pipelines (and their inpainting twins), FLUX.1 Kontext and Qwen-Image-Edit from hub ids or folders.

The same loading path as :func:`benchmarks.models.loading.load_pretrained` (local folder, else the hub
cache, else the hub; one sentence when a model cannot be had), with the pipeline classes of
each family. The returned pipelines carry the family's name and native resolution; the
resolution is also set as the pipelines' own default size (``default_sample_size``), which the
library's backbones read as the model's native size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    DiffusionPipeline,
    FluxFillPipeline,
    FluxKontextPipeline,
    FluxPipeline,
    QwenImageEditPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)

from benchmarks.devices import resolve_device, resolve_dtype
from benchmarks.models.loading import (
    Pipelines,
    check_speed_options,
    load_pipeline,
    optimize,
)
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath
from instdiffedit.ranges import Side

WITHOUT_T5 = {"text_encoder_3": None, "tokenizer_3": None}
"""``StableDiffusion3Pipeline.from_pretrained(name, **WITHOUT_T5)``: SD 3.x without its T5 encoder, as diffusers documents it."""


@dataclass(frozen=True)
class Family:
    """The diffusers pipeline classes of one model family.

    ``inpaint`` is the class of the family's inpainting twin (a model fine-tuned with the mask
    and the masked image as extra inputs), or None where the family has none and inpainting
    blends latents with the base model.
    """

    base: type[DiffusionPipeline]
    inpaint: type[DiffusionPipeline] | None


FAMILIES: dict[str, Family] = {
    "sdxl": Family(StableDiffusionXLPipeline, StableDiffusionXLInpaintPipeline),
    "sd3": Family(StableDiffusion3Pipeline, None),
    "flux": Family(FluxPipeline, FluxFillPipeline),
    "flux_kontext": Family(FluxKontextPipeline, None),  # an instruction editor: no mask, so no twin
    "qwen_image_edit": Family(QwenImageEditPipeline, None),
}


@dataclass
class FamilyPipelines(Pipelines):
    """Pipelines of one family (a key of :data:`FAMILIES`) and its native image side in pixels."""

    family: str
    resolution: int


def load_family(
    family: str,
    base: str,
    inpaint: str | None = None,
    *,
    resolution: Side | None = None,
    device: str = "auto",
    dtype: str = "auto",
    variant: str | None = None,
    t5: bool = True,
    family_key: str = "model.family",
    base_key: str = "model.base",
    inpaint_key: str = "model.inpaint",
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> FamilyPipelines:
    """Load a family's base pipeline (and its inpainting twin) from hub ids or local folders.

    ``resolution``: the native image side in pixels; None: the model's own (its denoiser's
    sample size in latents, times the VAE's downsampling). ``dtype``: as
    :func:`benchmarks.devices.resolve_dtype` (``"auto"`` is float16 on CUDA, so name bfloat16 for
    SD 3.x and FLUX.1). A VAE that asks to run in float32 (SDXL's
    ``force_upcast``: it overflows in float16) is kept in float32, as SDXL's pipelines upcast
    it to decode. ``variant`` selects weight files such as ``*.fp16.safetensors`` in both
    repositories. ``t5=False`` loads SD 3.x without its T5 encoder (``text_encoder_3=None``, as
    diffusers documents it: the T5 columns of the text sequence are then zeros), for a model trained
    so or to save T5-XXL's memory. ``fast_path`` and ``channels_last``: see
    :func:`benchmarks.models.loading.optimize`. Bad names fail before anything loads.
    """
    spec = _family(family, family_key)
    check_speed_options(fast_path)
    if not t5 and family != "sd3":
        raise ValueError(f"model.t5=false leaves out SD 3.x's T5 encoder, but the {family} family's text needs all its encoders; remove model.t5.")
    if inpaint is not None and spec.inpaint is None:
        raise ValueError(
            f"The {family} family has no inpainting twin, but {inpaint_key}={inpaint!r}; set "
            f"{inpaint_key}=null to inpaint by blending latents with the base model."
        )
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    options = {"torch_dtype": torch_dtype, "variant": variant, "use_safetensors": True} | ({} if t5 else WITHOUT_T5)
    base_pipe = load_pipeline(spec.base, base, base_key, options)
    inpaint_pipe = None if inpaint is None else load_pipeline(spec.inpaint, inpaint, inpaint_key, options)
    for pipe in (base_pipe, inpaint_pipe):
        if pipe is not None:
            pipe.to(torch_device)
            finish_pipeline(pipe, torch_dtype, resolution)
    resolution = base_pipe.default_sample_size * base_pipe.vae_scale_factor
    pipes = FamilyPipelines(base=base_pipe, inpaint=inpaint_pipe, family=family, resolution=resolution)
    return optimize(pipes, fast_path=fast_path, channels_last=channels_last)


def finish_pipeline(pipe: DiffusionPipeline, dtype: torch.dtype, resolution: int | None) -> DiffusionPipeline:
    """What every family pipeline gets once its modules are in ``dtype`` on their device: a VAE
    that asks to run in float32 (``force_upcast``) is put there under float16, ``resolution``
    (None: the model's own) becomes the pipeline's default size, and its progress bar is off."""
    if dtype == torch.float16 and pipe.vae.config.get("force_upcast"):
        pipe.vae.to(torch.float32)
    if resolution is not None:
        pipe.default_sample_size = resolution // pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _family(family: str, key: str) -> Family:
    if family not in FAMILIES:
        raise ValueError(f"Unknown {key} {family!r}; expected one of: {', '.join(FAMILIES)}.")
    return FAMILIES[family]
