"""The base of the baselines that run inside one of diffusers' editing pipelines.

DiffEdit-DDIM and LEDITS++ add no diffusion steps of their own: each builds diffusers' pipeline
from the base model's components (shared, not copied) with a scheduler of its own, and calls it.
What they share lives here once: SD 1.x/2.x only (diffusers writes these pipelines for them), the
working resolution and its check, the resizing to it and back to the input, the phase timer and
the UNet counter (a forward hook sees the pipeline's calls), and the shared UNet's attention
processors put back after every edit (a pipeline may replace them and never restore them, as
LEDITS++'s does). Their denoiser calls are the pipeline's own, so the fast paths do not apply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import PIL.Image
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline

from instdiffedit.accounting import PhaseTimer, count_denoiser_evals
from instdiffedit.backbones import check_family, family_of
from instdiffedit.resizing import to_input_size, to_working_size
from instdiffedit.types import Capabilities, EditResult

PIPELINE_BACKED = Capabilities(families=frozenset({"sd"}))
"""What a pipeline-backed method offers: SD 1.x/2.x, one item at a time, the pipeline's own (eager) steps."""

MaskedImage = tuple[PIL.Image.Image, torch.Tensor | None, torch.Tensor | None]
"""An edited image with its binary and soft masks (each None where the method has none)."""


class PipelineEditor(ABC):
    """Edit inside a diffusers pipeline built from the base pipeline's components.

    A subclass names ``pipeline_class``, gives it fresh schedulers (:meth:`schedulers`) and
    implements :meth:`pipeline_edit` on the working-size image; :meth:`edit` does the rest.
    Subclasses check and keep their own settings before calling ``__init__`` (which is the
    first to touch the model, and calls :meth:`schedulers`).

    Args:
        pipe: the base pipeline; its VAE, text encoder, tokenizer and UNet are shared, not copied.
        resolution: working resolution in pixels (square); default, the UNet's native size.
    """

    capabilities: ClassVar[Capabilities]
    pipeline_class: ClassVar[type[DiffusionPipeline]]
    first_phase: ClassVar[str] = "mask"
    """The timing key of the resizing to the working size: "mask" where the mask comes first."""
    resolution_multiple: ClassVar[int | None] = None
    """What the working resolution must be a multiple of; None: the VAE's scale factor."""

    def __init__(self, pipe: StableDiffusionPipeline, resolution: int | None) -> None:
        check_family(type(self), family_of(pipe))
        self.resolution = resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
        multiple = self.resolution_multiple or pipe.vae_scale_factor
        if self.resolution % multiple:
            raise ValueError(f"{type(self).__name__} needs a resolution that is a multiple of {multiple}, got {self.resolution}.")
        self.unet = pipe.unet
        self.pipeline = self.pipeline_class(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            unet=pipe.unet,
            **self.schedulers(pipe.scheduler.config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        self.pipeline.set_progress_bar_config(disable=True)

    @abstractmethod
    def schedulers(self, config: dict[str, Any]) -> dict[str, Any]:
        """The pipeline's scheduler arguments, fresh over the base model's noise schedule ``config``
        (never the base pipeline's instance, which other methods use)."""

    @abstractmethod
    def pipeline_edit(
        self, work_image: PIL.Image.Image, *, target: str, source: str | None, generator: torch.Generator | None, timer: PhaseTimer
    ) -> MaskedImage:
        """Edit the working-size image; time the phases on ``timer``. Masks may be at any resolution."""

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
        """``prompt`` and ``mask`` (a ground-truth mask, for oracle methods) are not used."""
        timer = PhaseTimer(self.unet.device)
        processors = self.unet.attn_processors  # the very objects, put back even on errors
        try:
            with count_denoiser_evals(self.unet) as counter, timer.phase("total"):
                with timer.phase(self.first_phase):
                    work_image = to_working_size(image, self.resolution)
                edited, binary, soft = self.pipeline_edit(work_image, target=target, source=source, generator=generator, timer=timer)
                with timer.phase("edit"):
                    edited, binary, soft = to_input_size(image, edited, binary, soft)
        finally:
            self.unet.set_attn_processor(processors)
        return EditResult(edited, binary, soft, timer.timings, counter.count)
