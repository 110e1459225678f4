"""Stable Diffusion 1.x/2.x: a UNet cross-attending to CLIP text, epsilon or v diffusion.

The paper's backbone. The text is CLIP's 77 token columns (the start token first, the paper's
reference); the maps are the UNet's cross-attention at the level closest to 16 x 16
(:func:`~instdiffedit.attention.default_downsample`: latent / 4 at 512 px). The SD-inpainting
twin's UNet takes 9 channels: the latents, the mask and the masked image's latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import ClassVar

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

from instdiffedit.attention import capture_cross_attention
from instdiffedit.backbones.base import (
    AttentionOptions,
    AttentionStore,
    Backbone,
    Family,
    register_backbone,
)
from instdiffedit.backbones.schedules import DiffusionSchedule, NoiseSchedule
from instdiffedit.fast_paths import Forward, unet_forward
from instdiffedit.token_references import Reference, TextPart, clip_parts


@register_backbone(StableDiffusionPipeline, StableDiffusionInpaintPipeline, name="SD 1.x/2.x")
class StableDiffusion(Backbone):
    """SD 1.x/2.x over a ``StableDiffusionPipeline`` or ``StableDiffusionInpaintPipeline``."""

    family: ClassVar[Family] = "sd"
    schedule_kind: ClassVar[type[NoiseSchedule]] = DiffusionSchedule
    default_scheduler: ClassVar[str] = "LMSDiscreteScheduler"  # the paper's
    default_reference: ClassVar[Reference] = "clip_bos"
    forward: ClassVar[Forward] = staticmethod(unet_forward)
    denoiser_name: ClassVar[str] = "unet"

    def native_resolution(self) -> int:
        return self.pipe.unet.config.sample_size * self.vae_scale_factor

    def _schedule(self, scheduler: str) -> NoiseSchedule:
        return DiffusionSchedule(scheduler, self.pipe.scheduler.config)

    def _encode_text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
        return (embeds,)

    def text_parts(self) -> tuple[TextPart, ...]:
        return clip_parts(self.pipe.tokenizer)

    def check_attention(self, options: AttentionOptions) -> None:
        if options.layers is not None or options.normaliser != "all_keys":
            raise ValueError(
                "attention_layers and attention_normaliser choose joint-attention layers (SD 3.x, FLUX.1); this "
                "UNet's maps come from its cross-attention, whose softmax runs over the text alone: set "
                "attention_downsample to choose the level."
            )

    def capture_text_attention(self, options: AttentionOptions, columns: int | None = None) -> AbstractContextManager[AttentionStore]:
        self.check_attention(options)  # all 77 columns: a cross-attention layer's softmax is over them anyway
        return capture_cross_attention(self.denoiser, self.latent_size, options.downsample)

    @property
    def twin_in_channels(self) -> int:
        return 2 * self.latent_channels + 1

    def inpainting_inputs(self, pixels: torch.Tensor, repaint: torch.Tensor, generators: Sequence[torch.Generator | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """As diffusers' SD and SDXL inpainting pipelines at strength 1, draw for draw: from each
        item's generator the initial noise, then the sample of the masked image's VAE posterior
        (the masked image is the image where the mask is 0); the mask goes to the latent size
        with nearest. Extra channels: ``[mask | masked-image latents]``."""
        shape = (1, self.latent_channels, *self.latent_size)
        noise = torch.cat([self.noise(shape, generator) for generator in generators])
        masked_latents = self.sample_latents(pixels * (1 - repaint), generators)
        latent_mask = F.interpolate(repaint, size=self.latent_size).to(self.dtype)  # nearest, as the pipelines
        return self.schedule.start_latents(noise), torch.cat([latent_mask, masked_latents], dim=1)
