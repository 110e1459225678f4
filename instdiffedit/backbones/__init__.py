"""Backbones: one per model family, each behind the interface of :class:`Backbone`.

Every method is written once against the interface; :func:`backbone_for` picks the family's
backbone from the pipeline's class:

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

from collections.abc import Callable

import torch
from diffusers import (
    DiffusionPipeline,
    FluxFillPipeline,
    FluxKontextPipeline,
    FluxPipeline,
    QwenImageEditPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)

from instdiffedit.backbones.base import (
    ALL_FAMILIES,
    BACKBONE_FAMILIES,
    FAMILY_NAMES,
    AttentionOptions,
    Backbone,
    DenoisingStep,
    Family,
    TextGuidance,
    blend_latents,
)
from instdiffedit.backbones.flux import Flux, FluxFill
from instdiffedit.backbones.sd import StableDiffusion
from instdiffedit.backbones.sd3 import StableDiffusion3
from instdiffedit.backbones.sdxl import StableDiffusionXL
from instdiffedit.registry import declared
from instdiffedit.types import Editor

BACKBONES: dict[type[DiffusionPipeline], type[Backbone]] = {
    StableDiffusionPipeline: StableDiffusion,
    StableDiffusionInpaintPipeline: StableDiffusion,
    StableDiffusionXLPipeline: StableDiffusionXL,
    StableDiffusionXLInpaintPipeline: StableDiffusionXL,
    StableDiffusion3Pipeline: StableDiffusion3,
    FluxPipeline: Flux,
    FluxFillPipeline: FluxFill,
}
"""The backbone of each pipeline class (subclasses of a class take its backbone); a family
from outside the project adds itself with :func:`register_backbone`."""


def register_backbone(*pipelines: type[DiffusionPipeline], name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator: the backbone class runs its ``family`` (shown as ``name``) over ``pipelines``.

    A new family (for example a subclass of :class:`StableDiffusion` with another ``family`` over
    a subclass of its pipeline) then works wherever the built-in ones do: :func:`backbone_for`,
    :func:`check_family` and the methods that list the family in their ``capabilities.families``.
    """
    if not pipelines:
        raise ValueError(f"register_backbone({name!r}) needs the pipeline classes the backbone runs over.")

    def register(backbone: type[Backbone]) -> type[Backbone]:
        if FAMILY_NAMES.get(backbone.family, name) != name:
            raise ValueError(f"The family {backbone.family!r} is already {FAMILY_NAMES[backbone.family]!r}, not {name!r}.")
        for pipeline in pipelines:
            if BACKBONES.get(pipeline, backbone) is not backbone:
                raise ValueError(f"{pipeline.__name__} already runs on {BACKBONES[pipeline].__name__}; subclass it for {backbone.__name__}.")
        FAMILY_NAMES[backbone.family] = name
        BACKBONES.update(dict.fromkeys(pipelines, backbone))
        return declared(backbone)

    return register


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
    names = ", ".join(cls.__name__ for cls in BACKBONES)
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
