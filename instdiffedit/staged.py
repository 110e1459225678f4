"""The shape most editing methods share: a first stage that yields a mask and/or edited
latents, then the image, either by inpainting the mask or by decoding the latents.

InstDiffEdit, DiffEdit (as the InstDiffEdit authors ran it), SDEdit, oracle inpainting and the
no-mask ablation differ only in their first stage; timing, denoiser accounting, inpainting and
the resizing back to the input image live here once. All of them run on every backbone
(:mod:`instdiffedit.backbones`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.accounting import PhaseTimer, count_denoiser_evals
from instdiffedit.arithmetic import Arithmetic, check_arithmetic
from instdiffedit.backbones import (
    BACKBONE_FAMILIES,
    Backbone,
    backbone_for,
    check_family,
)
from instdiffedit.inpaint import Inpainter
from instdiffedit.ranges import Side, Steps, checked_ranges
from instdiffedit.region_editors import LatentBlending, RegionEditor, TwinInpainting
from instdiffedit.resizing import binary_mask_to_size, to_input_size, to_working_size
from instdiffedit.types import Capabilities, EditResult

Output = Literal["inpaint", "decode"]

STAGED = Capabilities(families=BACKBONE_FAMILIES, batched=True, fast_paths=True)
"""What every staged method offers: every family with a backbone, batched edits (one inpainting
call for the batch, and the first stages batched where the method overrides
:meth:`StagedEditor.first_stages`), the backbone's diffusion steps and so its fast paths."""


@dataclass
class FirstStage:
    """What a method's first stage produced. Masks may be at any resolution (1 = edit)."""

    latents: torch.Tensor | None = None  # edited latents; the first row is decoded for output="decode"
    mask: torch.Tensor | None = None  # binary h x w
    soft_mask: torch.Tensor | None = None  # in [0, 1], h x w
    mask_history: torch.Tensor | None = None  # binary T x h x w: the mask of each denoising step, if it evolves


class StagedEditor(ABC):
    """Base of the methods that edit by a first stage followed by inpainting or decoding.

    Args:
        pipe: the base pipeline of any family (SD 1.x/2.x, SDXL, SD 3.x, FLUX.1), or a
            :class:`~instdiffedit.backbones.Backbone` built with options of its own.
        inpaint_pipe: the family's inpainting twin (SD-inpainting, SDXL inpainting, FLUX.1
            Fill); without one, the base model inpaints by latent blending.
        output: "inpaint" repaints the first stage's mask with the target text; "decode"
            decodes the first stage's latents.
        inpaint_steps: the inpainting's steps.
        inpaint_guidance_scale: the inpainting's guidance; default (None), the inpainting
            pipeline's own (the twin's, else the base model's: 7.5 for SD 1.x/2.x as the authors
            ran SD-inpainting, 7.5 for SDXL's twin, 30 for FLUX.1 Fill; blending with SDXL 5,
            SD 3.x 7, FLUX.1 [dev] 3.5).
        scheduler: the diffusers scheduler class of the method's own denoising loops; default
            (None), the backbone's: LMS for SD 1.x/2.x and SDXL (the paper's), flow-matching
            Euler for SD 3.x and FLUX.1.
        resolution: working resolution in pixels; default, the model's native size.
        arithmetic: how the first stage's mask is resized to the working resolution for the
            inpainting: "authors" as the authors' code (PIL bicubic, then binarised at 0.5 as
            the SD-inpainting pipeline does), "float" nearest (see :func:`binary_mask_to_size`).
    """

    first_stage_phase: ClassVar[str] = "mask"
    """The timing key of the first stage: "mask" for mask methods, "edit" for SDEdit."""

    capabilities: ClassVar[Capabilities]
    """Each method declares its own; :data:`STAGED` is what every staged method offers."""

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        output: Output = "inpaint",
        inpaint_steps: Steps = 50,
        inpaint_guidance_scale: float | None = None,
        scheduler: str | None = None,
        resolution: Side | None = None,
        arithmetic: Arithmetic = "authors",
        region_editor: Callable[[Backbone], RegionEditor] | None = None,
    ) -> None:
        if output not in ("inpaint", "decode"):
            raise ValueError(f"output must be 'inpaint' or 'decode', got {output!r}.")
        check_arithmetic(arithmetic)
        self.arithmetic = arithmetic
        self.backbone = backbone_for(pipe, scheduler=scheduler, resolution=resolution)
        check_family(type(self), self.backbone.family)
        self.output = output
        self.region_editor: RegionEditor | None = None
        self.inpainter: Inpainter | None = None  # the inpainting, where no other region editor is given
        if output == "inpaint" and region_editor is not None:
            self.region_editor = region_editor(self.backbone)
        elif output == "inpaint":
            settings = dict(inpaint_steps=inpaint_steps, inpaint_guidance_scale=inpaint_guidance_scale)
            inpainting = TwinInpainting(self.backbone, inpaint_pipe, **settings) if inpaint_pipe is not None else LatentBlending(self.backbone, **settings)
            self.region_editor, self.inpainter = inpainting, inpainting.inpainter

    @abstractmethod
    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage: ...

    def first_stages(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        masks: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator | None],
    ) -> list[FirstStage]:
        """The first stage of several items; methods that can batch their UNet calls override it."""
        return [
            self.first_stage(image, target=target, source=source, mask=mask, generator=generator)
            for image, target, source, mask, generator in zip(images, targets, sources, masks, generators, strict=True)
        ]

    def edit(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None = None,
        prompt: str | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> EditResult:
        return self.edit_batch([image], targets=[target], sources=[source], prompts=[prompt], masks=[mask], generators=[generator])[0]

    def edit_batch(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None] | None = None,
        prompts: Sequence[str | None] | None = None,
        masks: Sequence[torch.Tensor | None] | None = None,
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> list[EditResult]:
        """Edit K items together: the first stages (batched where the method can) and one
        inpainting (or decoding) call for all. Each item uses its own generator in the same
        order as alone, so it gets the result it gets alone, up to the floating-point effects
        of larger batches. Timings and UNet evaluations are the batch's, shared equally.
        """
        k = len(images)
        sources, masks, generators = (list(v) if v is not None else [None] * k for v in (sources, masks, generators))
        if not k or not len(targets) == len(sources) == len(masks) == len(generators) == k:
            raise ValueError("edit_batch needs at least one item and one target, source, mask and generator per image.")
        b = self.backbone
        timer = PhaseTimer(b.device)
        output_evals = 0  # each phase counts its own evaluations: an editor may count its own (results of another editor)
        with timer.phase("total"):
            with timer.phase(self.first_stage_phase), count_denoiser_evals(b.denoiser) as counter:
                stages = self.first_stages(images, targets=targets, sources=sources, masks=masks, generators=generators)
            if self.output == "inpaint":
                with timer.phase("inpaint"):
                    edited, output_evals = self._inpaint(images, [stage.mask for stage in stages], targets, sources, generators)
            else:
                with timer.phase("edit"):
                    edited = b.decode(torch.cat([stage.latents[:1] for stage in stages]))
            with timer.phase("edit"):
                resized = [to_input_size(image, out, s.mask, s.soft_mask) for image, out, s in zip(images, edited, stages)]
        timings = {name: seconds / k for name, seconds in timer.timings.items()}
        return [
            EditResult(
                image,
                binary,
                soft,
                dict(timings),
                (counter.count + output_evals) // k,
                None if stage.mask_history is None else stage.mask_history.to("cpu", torch.bool),
            )
            for (image, binary, soft), stage in zip(resized, stages)
        ]

    def _inpaint(
        self,
        images: Sequence[PIL.Image.Image],
        masks: Sequence[torch.Tensor | None],
        targets: Sequence[str],
        sources: Sequence[str | None],
        generators: Sequence[torch.Generator | None],
    ) -> tuple[list[PIL.Image.Image], int]:
        """The region editor on the working-size images and masks: the edits and their denoiser evaluations."""
        if any(mask is None for mask in masks):
            raise ValueError(f"{type(self).__name__} produced no mask to inpaint; use output='decode'.")
        side = self.backbone.resolution
        work_masks = torch.stack([binary_mask_to_size(m, (side, side), self.arithmetic) for m in masks])[:, None]
        work_images = [to_working_size(image, side) for image in images]
        edits = self.region_editor(work_images, work_masks, targets=targets, sources=sources, generators=generators)
        return edits.images, edits.denoiser_evals
