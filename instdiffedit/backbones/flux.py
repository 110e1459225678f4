"""FLUX.1: double- and single-stream MMDiT blocks over T5 text tokens, flow matching, guidance-distilled.

What differs from SD 3.x: the text sequence is T5's alone (CLIP-L only gives the pooled
embedding), so there is no start token and the reference the mask inverts is T5's first padding
token (:data:`~instdiffedit.token_references.FLUX_REFERENCE`); [dev] takes the guidance scale as
an input (one denoiser row per latent, no classifier-free batch) and [schnell] takes none; the
transformer sees 2 x 2 latent patches packed into tokens, with rotary position ids: both happen
inside the backbone's forward, so methods see B x C x h x w latents. The sigmas are the
pipeline's (1 .. 1/n, shifted for the image's token count). FLUX.1 Fill [dev] is the twin: its
transformer takes the packed latents, the masked image's latents and the pixel mask folded
into each latent (8 x 8 pixels -> 64 channels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from diffusers import DiffusionPipeline, FluxFillPipeline, FluxPipeline
from diffusers.utils.torch_utils import randn_tensor

from instdiffedit.backbones.base import Family, Guidance, register_backbone
from instdiffedit.backbones.joint import JointAttentionBackbone
from instdiffedit.fast_paths import Forward
from instdiffedit.token_references import (
    FLUX_REFERENCE,
    FLUX_T5_LENGTH,
    Reference,
    TextPart,
    flux_parts,
)

SCHNELL_T5_LENGTH = 256
"""T5 tokens of FLUX.1 [schnell] (its model card's ``max_sequence_length``)."""


def image_ids(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """FLUX.1's position ids of an ``height`` x ``width`` token grid, (h w) x 3, as
    ``FluxPipeline._prepare_latent_image_ids`` makes them, but on ``like``'s device (no host copy,
    so a CUDA graph can hold it)."""
    ids = torch.zeros(height, width, 3, device=like.device, dtype=like.dtype)
    ids[..., 1] = torch.arange(height, device=like.device, dtype=like.dtype)[:, None]
    ids[..., 2] = torch.arange(width, device=like.device, dtype=like.dtype)[None, :]
    return ids.reshape(height * width, 3)


def flux_forward(
    transformer: torch.nn.Module,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    context: torch.Tensor,
    pooled: torch.Tensor,
    *guidance: torch.Tensor,
) -> torch.Tensor:
    """The transformer's velocity for unpacked latents (B x C x h x w in, B x C' x h x w out), as FluxPipeline calls it."""
    rows, channels, height, width = sample.shape
    packed = FluxPipeline._pack_latents(sample, rows, channels, height, width)
    output = transformer.forward(
        hidden_states=packed,
        timestep=timestep.expand(rows).to(sample.dtype) / 1000,
        guidance=guidance[0] if guidance else None,
        pooled_projections=pooled,
        encoder_hidden_states=context,
        txt_ids=torch.zeros(context.shape[1], 3, device=sample.device, dtype=sample.dtype),
        img_ids=image_ids(height // 2, width // 2, sample),
        return_dict=False,
    )[0]
    return FluxPipeline._unpack_latents(output, height, width, 1)  # sizes in latents: a factor of 1


@register_backbone(FluxPipeline, name="FLUX.1")
class Flux(JointAttentionBackbone):
    """FLUX.1 [dev] or [schnell] over a ``FluxPipeline``.

    ``max_sequence_length``: T5 tokens; default 512 for guidance-distilled models ([dev]) and
    256 for the others ([schnell]), as their model cards run them.
    """

    family: ClassVar[Family] = "flux"
    default_reference: ClassVar[Reference] = FLUX_REFERENCE
    linear_sigmas: ClassVar[bool] = True
    forward: ClassVar[Forward] = staticmethod(flux_forward)

    def __init__(self, pipe: DiffusionPipeline, *, scheduler: str | None = None, resolution: int | None = None, max_sequence_length: int | None = None) -> None:
        super().__init__(pipe, scheduler=scheduler, resolution=resolution)
        self.max_sequence_length = max_sequence_length or (FLUX_T5_LENGTH if self.guidance == "embedded" else SCHNELL_T5_LENGTH)

    @property
    def guidance(self) -> Guidance:
        return "embedded" if self.denoiser.config.guidance_embeds else "none"

    def embedded_guidance(self, rows: int, scale: float) -> tuple[torch.Tensor, ...]:
        if self.guidance == "none":
            return ()
        return (torch.full((rows,), scale, device=self.device, dtype=torch.float32),)

    def _encode_text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, pooled, _ = self.pipe.encode_prompt(prompt, None, device=self.device, num_images_per_prompt=1, max_sequence_length=self.max_sequence_length)
        return embeds, pooled

    def text_parts(self) -> tuple[TextPart, ...]:
        return flux_parts(self.pipe.tokenizer_2, self.max_sequence_length)


@register_backbone(FluxFillPipeline, name="FLUX.1")
class FluxFill(Flux):
    """FLUX.1 Fill [dev] over a ``FluxFillPipeline``: the inpainting twin of FLUX.1 [dev]."""

    @property
    def twin_in_channels(self) -> int:
        return 4 * (2 * self.latent_channels + self.vae_scale_factor**2)

    def inpainting_inputs(self, pixels: torch.Tensor, repaint: torch.Tensor, generators: Sequence[torch.Generator | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``FluxFillPipeline`` at strength 1, draw for draw: from each item's generator a sample
        of the image's VAE posterior (which the noise then replaces entirely; drawn so that the
        noise is the pipeline's), the initial noise, the sample of the masked image's posterior
        (the image where the mask is 0). Extra channels: ``[masked-image latents | mask]``, the
        pixel mask folded into 64 channels per latent as the pipeline does before packing."""
        shape = (1, self.latent_channels, *self.latent_size)
        for generator in generators:
            randn_tensor(shape, generator=generator, device=self.device, dtype=self.vae.dtype)
        noise = torch.cat([self.noise(shape, generator) for generator in generators])
        masked_latents = self.sample_latents(pixels * (1 - repaint), generators)
        (height, width), factor = self.latent_size, self.vae_scale_factor
        folded = repaint[:, 0].view(-1, height, factor, width, factor).permute(0, 2, 4, 1, 3).reshape(-1, factor**2, height, width)
        return self.schedule.start_latents(noise), torch.cat([masked_latents, folded.to(masked_latents.dtype)], dim=1)
