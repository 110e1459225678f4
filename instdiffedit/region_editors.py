"""Editors that take any mask: "what, given where".

A region editor edits K working-size images inside their masks (K x 1 x R x R, 1 = edit) and says
how many denoiser evaluations that spent. Every one is built as a method is, from the base
pipeline (or its backbone) and the family's inpainting twin (None where there is none), so a
composed method (:class:`instdiffedit.compose.Compose`) builds any of them the same way:

- :class:`TwinInpainting`: the family's inpainting twin (SD-inpainting, SDXL inpainting, FLUX.1 Fill);
- :class:`LatentBlending`: the base model, its latents outside the mask kept at every step;
- :class:`InstructionInMask`: any editor (an instruction editor, or any no-mask method), its
  output composited inside the mask;
- FlowEdit restricted to the mask lives with FlowEdit (:class:`baselines.flowedit.FlowEditInMask`).

The first two are the final step of every staged method (:class:`instdiffedit.staged.StagedEditor`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.accounting import count_denoiser_evals
from instdiffedit.backbones import BACKBONE_FAMILIES, FAMILY_NAMES, Backbone, backbone_for, check_family, family_of
from instdiffedit.inpaint import Inpainter, InpaintingModelInpainter, LatentBlendInpainter
from instdiffedit.types import Capabilities, Editor


@dataclass
class RegionEdits:
    """The edited images (working size, one per item) and the denoiser evaluations they took."""

    images: list[PIL.Image.Image]
    denoiser_evals: int


class RegionEditor(Protocol):
    """Edits each image inside its mask; ``capabilities`` says where and how it runs."""

    capabilities: ClassVar[Capabilities]

    def __call__(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        generators: Sequence[torch.Generator | None],
    ) -> RegionEdits: ...


class Inpainting:
    """An :class:`~instdiffedit.inpaint.Inpainter` as a region editor: repaint the mask with the target text."""

    capabilities: ClassVar[Capabilities] = Capabilities(families=BACKBONE_FAMILIES, batched=True, fast_paths=True)

    def __init__(self, inpainter: Inpainter) -> None:
        self.inpainter = inpainter

    def __call__(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        generators: Sequence[torch.Generator | None],
    ) -> RegionEdits:
        """``sources`` are not used: an inpainter repaints with the target text alone."""
        with count_denoiser_evals(self.inpainter.denoiser) as counter:
            images = self.inpainter.batch(list(images), masks, list(targets), list(generators))
        return RegionEdits(images, counter.count)


class TwinInpainting(Inpainting):
    """The family's inpainting twin (see :class:`~instdiffedit.inpaint.InpaintingModelInpainter`).

    ``inpaint_steps``, ``inpaint_guidance_scale``: as every staged method's (default: 50 steps, the
    twin pipeline's own guidance).
    """

    capabilities = replace(Inpainting.capabilities, families=frozenset({"sd", "sdxl", "flux"}), needs_inpainting_model=True)

    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        inpaint_steps: int = 50,
        inpaint_guidance_scale: float | None = None,
    ) -> None:
        check_family(type(self), family_of(pipe))
        if inpaint_pipe is None:
            raise ValueError("The twin editor needs the family's inpainting twin: set model.inpaint, or use editor=blend.")
        backbone = backbone_for(pipe)
        if family_of(inpaint_pipe) != backbone.family:
            raise ValueError(
                f"The inpainting model is a {FAMILY_NAMES[family_of(inpaint_pipe)]} model and the base model "
                f"a {FAMILY_NAMES[backbone.family]} one; set model.inpaint to the base family's twin, or to null."
            )
        super().__init__(InpaintingModelInpainter(inpaint_pipe, inpaint_steps, inpaint_guidance_scale, resolution=backbone.resolution))


class LatentBlending(Inpainting):
    """The base model's latent blending (see :class:`~instdiffedit.inpaint.LatentBlendInpainter`); the twin is not used."""

    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        inpaint_steps: int = 50,
        inpaint_guidance_scale: float | None = None,
    ) -> None:
        super().__init__(LatentBlendInpainter(backbone_for(pipe), inpaint_steps, inpaint_guidance_scale))


class InstructionInMask:
    """Any editor's output composited inside the mask: the input's pixels outside it, the edit's inside.

    ``editor`` builds the editor as a method is built, from the base pipeline (here its backbone)
    and the twin: an instruction editor (FLUX.1 Kontext, Qwen-Image-Edit) or any no-mask method
    (SDEdit). It edits each working-size image with the item's target and source texts and its
    generator (never the ground-truth mask); its denoiser evaluations are those its results report.
    The compositing is exact: each pixel is the input's or the edit's, unblended.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(families=BACKBONE_FAMILIES, batched=True)
    """The compositing's own; an instance's are joined with its editor's (``self.capabilities``)."""

    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        editor: Callable[..., Editor],
    ) -> None:
        self.editor = editor(pipe, inpaint_pipe)
        self.capabilities = type(self).capabilities.joined(self.editor.capabilities)

    def __call__(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        generators: Sequence[torch.Generator | None],
    ) -> RegionEdits:
        composited, evals = [], 0
        for image, mask, target, source, generator in zip(images, masks, targets, sources, generators, strict=True):
            result = self.editor.edit(image, target=target, source=source, generator=generator)
            if result.image.size != image.size:
                raise ValueError(
                    f"{type(self.editor).__name__} returned a {result.image.size} image for a {image.size} input; editors return the input's size."
                )
            inside = (mask[0] >= 0.5).cpu().numpy()[..., None]
            composited.append(PIL.Image.fromarray(np.where(inside, np.asarray(result.image.convert("RGB")), np.asarray(image.convert("RGB")))))
            evals += result.denoiser_evals
        return RegionEdits(composited, evals)
