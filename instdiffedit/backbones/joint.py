"""What SD 3.x and FLUX.1 share: a flow-matching transformer whose image and text tokens attend jointly.

The maps are the image-query -> text-key block of the joint attention of every chosen layer,
at the transformer's token grid (H/16 x W/16: 2 x 2 latents per token), exact or renormalised
over the text keys (:mod:`instdiffedit.joint_attention`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import ClassVar

from instdiffedit.backbones.base import AttentionOptions, AttentionStore, Backbone
from instdiffedit.backbones.schedules import FlowMatchingSchedule, NoiseSchedule
from instdiffedit.joint_attention import (
    NORMALISERS,
    capture_joint_attention,
    joint_attention_layers,
    token_grid,
)


class JointAttentionBackbone(Backbone):
    """A flow-matching transformer pipeline (``pipe.transformer``) with joint text-image attention."""

    schedule_kind: ClassVar[type[NoiseSchedule]] = FlowMatchingSchedule
    default_scheduler: ClassVar[str] = "FlowMatchEulerDiscreteScheduler"
    denoiser_name: ClassVar[str] = "transformer"
    latent_multiple: ClassVar[int] = 2
    shifts_latents: ClassVar[bool] = True
    linear_sigmas: ClassVar[bool] = False
    """Whether the family's pipelines pass the sigmas 1 .. 1/n to the scheduler (FLUX.1's do)."""

    def native_resolution(self) -> int:
        return self.pipe.default_sample_size * self.vae_scale_factor

    @property
    def token_grid(self) -> tuple[int, int]:
        return token_grid(self.denoiser, self.latent_size)

    def _schedule(self, scheduler: str) -> NoiseSchedule:
        height, width = self.token_grid
        return FlowMatchingSchedule(scheduler, self.pipe.scheduler.config, image_tokens=height * width, linear_sigmas=self.linear_sigmas)

    def check_attention(self, options: AttentionOptions) -> None:
        if options.downsample is not None:
            raise ValueError(
                "attention_downsample chooses a UNet's cross-attention level (SD 1.x/2.x, SDXL); this transformer's "
                "maps come from its joint attention at the token grid: set attention_layers to choose layers."
            )
        if options.normaliser not in NORMALISERS:
            raise ValueError(f"Unknown attention_normaliser {options.normaliser!r}; expected one of: {', '.join(NORMALISERS)}.")
        count = len(joint_attention_layers(self.denoiser))
        if options.layers is not None and (not options.layers or not all(0 <= i < count for i in options.layers)):
            raise ValueError(f"attention_layers={list(options.layers)} must be indices 0-{count - 1} of the transformer's joint-attention layers.")

    def capture_text_attention(self, options: AttentionOptions, columns: int | None = None) -> AbstractContextManager[AttentionStore]:
        self.check_attention(options)
        return capture_joint_attention(
            self.denoiser,
            self.token_grid,
            layers=options.layers,
            conditional_only=self.guidance == "cfg",
            normaliser=options.normaliser,
            columns=columns,
        )
