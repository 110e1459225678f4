"""Backbones: one per model family, each behind the interface of :class:`Backbone`.

Every method is written once against the interface; :func:`backbone_for` picks the family's
backbone from the pipeline's class, as each backbone class declares it (:func:`register_backbone`
on the class, the project's families as a plugin's):

===========  ======================================  ==========================================
family       pipelines                               backbone
===========  ======================================  ==========================================
``sd``       ``StableDiffusion(Inpaint)Pipeline``    :class:`StableDiffusion`
``sdxl``     ``StableDiffusionXL(Inpaint)Pipeline``  :class:`StableDiffusionXL`
``sd3``      ``StableDiffusion3Pipeline``            :class:`StableDiffusion3`
``flux``     ``FluxPipeline``, ``FluxFillPipeline``  :class:`Flux`, :class:`FluxFill`
===========  ======================================  ==========================================

The instruction-tuned editors' families (``flux_kontext``: ``FluxKontextPipeline``;
``qwen_image_edit``: ``QwenImageEditPipeline``) have no backbone: their editors call the
pipeline as it is (:data:`PIPELINE_FAMILIES`).
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, FluxKontextPipeline, QwenImageEditPipeline

from instdiffedit.backbones.base import (
    ALL_FAMILIES,
    BACKBONES,
    FAMILY_NAMES,
    AttentionOptions,
    Backbone,
    DenoisingStep,
    Family,
    TextGuidance,
    blend_latents,
    register_backbone,
)
from instdiffedit.backbones.flux import Flux, FluxFill
from instdiffedit.backbones.sd import StableDiffusion
from instdiffedit.backbones.sd3 import StableDiffusion3
from instdiffedit.backbones.sdxl import StableDiffusionXL
from instdiffedit.types import Editor

BACKBONE_FAMILIES: frozenset[str] = frozenset(backbone.family for backbone in BACKBONES.values())
"""The project's families with a backbone (each declared on its class), on which the shared diffusion
steps run. The instruction-tuned editors' models (FLUX.1 Kontext, Qwen-Image-Edit) have none: they
run inside their own pipelines."""

PIPELINE_FAMILIES: dict[type[DiffusionPipeline], Family] = {
    FluxKontextPipeline: "flux_kontext",
    QwenImageEditPipeline: "qwen_image_edit",
}
"""The family of each pipeline class without a backbone: editors run these pipelines as they are.
Both denoise with a transformer (``pipe.transformer``)."""


def backbone_class(pipe: DiffusionPipeline) -> type[Backbone]:
    """The backbone class for ``pipe``'s class, or a TypeError listing the supported pipelines."""
    for cls in type(pipe).__mro__:
        if cls in BACKBONES:
            return BACKBONES[cls]
    families = list(FAMILY_NAMES)
    names = ", ".join(cls.__name__ for cls in sorted(BACKBONES, key=lambda cls: families.index(BACKBONES[cls].family)))
    raise TypeError(f"No backbone for a {type(pipe).__name__}; supported pipelines: {names}.")


def _pipeline_family(pipe: DiffusionPipeline) -> Family | None:
    """The family of a pipeline without a backbone (:data:`PIPELINE_FAMILIES`), else None."""
    return next((PIPELINE_FAMILIES[cls] for cls in type(pipe).__mro__ if cls in PIPELINE_FAMILIES), None)


def backbone_for(pipe: DiffusionPipeline | Backbone, *, scheduler: str | None = None, resolution: int | None = None) -> Backbone:
    """The backbone over ``pipe`` with these options; a :class:`Backbone` given as ``pipe`` is used as it is
    (it holds its own options: give none here)."""
    if isinstance(pipe, Backbone):
        if scheduler is not None or resolution is not None:
            raise ValueError("Given a backbone, set its scheduler and resolution when building it, not here.")
        return pipe
    return backbone_class(pipe)(pipe, scheduler=scheduler, resolution=resolution)


def denoiser_of(pipe: DiffusionPipeline) -> torch.nn.Module:
    """The pipeline's denoiser: its UNet (SD 1.x/2.x, SDXL) or transformer (the other families)."""
    if _pipeline_family(pipe) is not None:
        return pipe.transformer
    return getattr(pipe, backbone_class(pipe).denoiser_name)


def family_of(pipe: DiffusionPipeline | Backbone) -> Family:
    """The family of a pipeline or backbone (a key of :data:`FAMILY_NAMES`)."""
    if isinstance(pipe, Backbone):
        return pipe.family
    return _pipeline_family(pipe) or backbone_class(pipe).family


def check_family(method: type[Editor], family: str) -> None:
    """A ValueError unless ``method`` (an editor class) runs on ``family`` (its ``capabilities.families``)."""
    if family not in FAMILY_NAMES:
        raise ValueError(f"Unknown model family {family!r}; expected one of: {', '.join(FAMILY_NAMES)}.")
    families = method.capabilities.families
    if family not in families:
        supported = " and ".join(FAMILY_NAMES[f] for f in FAMILY_NAMES if f in families)
        raise ValueError(f"{method.__name__} runs on {supported} models only, not on {FAMILY_NAMES[family]}.")


__all__ = [
    "ALL_FAMILIES",
    "BACKBONES",
    "BACKBONE_FAMILIES",
    "FAMILY_NAMES",
    "AttentionOptions",
    "Backbone",
    "DenoisingStep",
    "Family",
    "Flux",
    "FluxFill",
    "PIPELINE_FAMILIES",
    "StableDiffusion",
    "StableDiffusion3",
    "StableDiffusionXL",
    "TextGuidance",
    "backbone_class",
    "backbone_for",
    "blend_latents",
    "check_family",
    "denoiser_of",
    "family_of",
    "register_backbone",
]
