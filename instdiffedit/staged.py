"""The shape most editing methods share: a first stage that yields a mask and/or edited
latents, then the image, either by inpainting the mask or by decoding the latents.

InstDiffEdit, DiffEdit (as the InstDiffEdit authors ran it), SDEdit, oracle inpainting and the
no-mask ablation differ only in their first stage; timing, UNet accounting, inpainting and
the resizing back to the input image live here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

from instdiffedit.accounting import PhaseTimer, count_unet_evals
from instdiffedit.diffusion import LatentDiffusion
from instdiffedit.inpaint import Inpainter, LatentBlendInpainter, PipelineInpainter
from instdiffedit.resizing import to_input_size, to_working_size
from instdiffedit.types import EditResult

Output = Literal["inpaint", "decode"]


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
        pipe: the base Stable Diffusion pipeline.
        inpaint_pipe: an SD-inpainting pipeline; without one, the base model inpaints by
            latent blending.
        output: "inpaint" repaints the first stage's mask with the target text; "decode"
            decodes the first stage's latents.
        inpaint_steps, inpaint_guidance_scale: the inpainting's schedule.
        scheduler: the diffusers scheduler class of the method's own denoising loops.
        resolution: working resolution in pixels; default, the UNet's native size.
    """

    first_stage_phase: ClassVar[str] = "mask"
    """The timing key of the first stage: "mask" for mask methods, "edit" for SDEdit."""

    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        inpaint_pipe: StableDiffusionInpaintPipeline | None = None,
        *,
        output: Output = "inpaint",
        inpaint_steps: int = 50,
        inpaint_guidance_scale: float = 7.5,
        scheduler: str = "LMSDiscreteScheduler",
        resolution: int | None = None,
    ) -> None:
        if output not in ("inpaint", "decode"):
            raise ValueError(f"output must be 'inpaint' or 'decode', got {output!r}.")
        self.diffusion = LatentDiffusion(pipe, scheduler=scheduler, resolution=resolution)
        self.output = output
        self.inpainter: Inpainter | None = None
        if output == "inpaint":
            self.inpainter = (
                PipelineInpainter(inpaint_pipe, inpaint_steps, inpaint_guidance_scale)
                if inpaint_pipe is not None
                else LatentBlendInpainter(self.diffusion, inpaint_steps, inpaint_guidance_scale)
            )

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
        d = self.diffusion
        timer = PhaseTimer(d.device)
        with count_unet_evals(d.unet, self.inpainter.unet if self.inpainter else None) as counter, timer.phase("total"):
            with timer.phase(self.first_stage_phase):
                stage = self.first_stage(image, target=target, source=source, mask=mask, generator=generator)
            if self.output == "inpaint":
                with timer.phase("inpaint"):
                    edited = self._inpaint(image, stage.mask, target, generator)
            else:
                with timer.phase("edit"):
                    edited = d.decode(stage.latents[:1])[0]
            with timer.phase("edit"):
                edited, binary, soft = to_input_size(image, edited, stage.mask, stage.soft_mask)
        history = None if stage.mask_history is None else stage.mask_history.to("cpu", torch.bool)
        return EditResult(edited, binary, soft, timer.timings, counter.count, history)

    def _inpaint(
        self, image: PIL.Image.Image, mask: torch.Tensor | None, target: str, generator: torch.Generator | None
    ) -> PIL.Image.Image:
        if mask is None:
            raise ValueError(f"{type(self).__name__} produced no mask to inpaint; use output='decode'.")
        side = self.diffusion.resolution
        work_mask = F.interpolate(mask[None, None].float(), size=(side, side), mode="nearest")
        return self.inpainter(to_working_size(image, side), work_mask, target, generator)
