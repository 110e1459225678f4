"""SDXL: a UNet cross-attending to two CLIP encoders' hidden states side by side, with text-time conditioning.

What differs from SD 1.x/2.x: the text inputs (CLIP-L's and CLIP-G's hidden states
concatenated along the channels, so the 77 token columns and CLIP's start token are as in
SD 1.x), the pooled CLIP-G embedding and the six size ids (original size, crop corner, target
size) the UNet adds to its time embedding; the unconditional inputs are zeros where the model
asks for them (``force_zeros_for_empty_prompt``, as the SDXL pipelines do without a negative
prompt). The maps come from the cross-attention level closest to 16 x 16 as for SD 1.x (SDXL's
highest level has no attention; at 1024 px the levels are 64 x 64 and 32 x 32, so latent / 4).
The twin (``diffusers/stable-diffusion-xl-1.0-inpainting-0.1``) is a 9-channel UNet, prepared
as SD's. SDXL's VAE overflows in float16; the loader keeps it in float32
(:func:`benchmarks.models.families.load_family`) and the backbone runs it in its own dtype.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers import DiffusionPipeline, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline

from instdiffedit.backbones.base import Family, register_backbone
from instdiffedit.backbones.sd import StableDiffusion
from instdiffedit.fast_paths import Forward


def sdxl_forward(
    unet: torch.nn.Module, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor, time_ids: torch.Tensor
) -> torch.Tensor:
    added = {"text_embeds": pooled, "time_ids": time_ids}
    return unet.forward(sample, timestep, encoder_hidden_states=context, added_cond_kwargs=added).sample


@register_backbone(StableDiffusionXLPipeline, StableDiffusionXLInpaintPipeline, name="SDXL")
class StableDiffusionXL(StableDiffusion):
    """SDXL over a ``StableDiffusionXLPipeline`` or ``StableDiffusionXLInpaintPipeline``."""

    family: ClassVar[Family] = "sdxl"
    forward: ClassVar[Forward] = staticmethod(sdxl_forward)

    def __init__(self, pipe: DiffusionPipeline, *, scheduler: str | None = None, resolution: int | None = None) -> None:
        super().__init__(pipe, scheduler=scheduler, resolution=resolution)
        if pipe.config.get("requires_aesthetics_score"):
            raise ValueError("SDXL models conditioned on aesthetic scores (the refiner) are not supported; use the base or inpainting model.")

    def native_resolution(self) -> int:
        return self.pipe.default_sample_size * self.vae_scale_factor

    def _time_ids(self) -> torch.Tensor:
        """(original size, crop top-left, target size): the working size, uncropped, as the pipelines default to."""
        side = self.resolution
        return torch.tensor([[side, side, 0, 0, side, side]], device=self.device, dtype=self.dtype)

    def _encode_text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, _, pooled, _ = self.pipe.encode_prompt(prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        return embeds, pooled, self._time_ids()

    def unconditional_text(self) -> tuple[torch.Tensor, ...]:
        if not self.pipe.config.force_zeros_for_empty_prompt:
            return super().unconditional_text()
        embeds, pooled, time_ids = self.text("")
        return torch.zeros_like(embeds), torch.zeros_like(pooled), time_ids
