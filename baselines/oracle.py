"""Oracle inpainting: the split's ground-truth mask handed to the same inpainting step.

The upper bound of every mask-then-inpaint method (InstDiffEdit, DiffEdit) on splits with
human masks: it isolates the mask's quality from the inpainting's.
"""

from __future__ import annotations

from dataclasses import replace

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.arithmetic import Arithmetic
from instdiffedit.backbones import Backbone
from instdiffedit.ranges import Side, Steps, checked_ranges
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, StagedEditor


@register_method("oracle_inpaint", role="upper bound", rank=1, quick=("method.inpaint_steps=4",), warmup=("method.inpaint_steps=2",))
class OracleInpaint(StagedEditor):
    """Inpaint the ground-truth mask with the target text (``arithmetic``: how it is resized, see :class:`StagedEditor`)."""

    capabilities = replace(STAGED, needs_ground_truth_mask=True)

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        inpaint_steps: Steps = 50,
        inpaint_guidance_scale: float | None = None,
        scheduler: str | None = None,
        resolution: Side | None = None,
        arithmetic: Arithmetic = "authors",
    ) -> None:
        super().__init__(
            pipe,
            inpaint_pipe,
            output="inpaint",
            inpaint_steps=inpaint_steps,
            inpaint_guidance_scale=inpaint_guidance_scale,
            scheduler=scheduler,
            resolution=resolution,
            arithmetic=arithmetic,
        )

    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        if mask is None:
            raise ValueError("oracle_inpaint needs a ground-truth mask, and this item has none: use a split with masks.")
        return FirstStage(mask=(mask > 0.5).float())
