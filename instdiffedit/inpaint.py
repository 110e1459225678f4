"""The final step of mask-based editing: repaint the masked region with the target text."""

from __future__ import annotations

from typing import Protocol

import PIL.Image
import torch
from diffusers import StableDiffusionInpaintPipeline

from instdiffedit.diffusion import LatentDiffusion, blend_latents


class Inpainter(Protocol):
    """Repaints ``mask`` (1 x 1 x R x R, 1 = repaint) of ``image`` (R x R) following ``prompt``."""

    unet: torch.nn.Module

    def __call__(
        self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None
    ) -> PIL.Image.Image: ...


class PipelineInpainter:
    """A diffusers SD-inpainting pipeline (9-channel UNet), as the InstDiffEdit authors used."""

    def __init__(self, pipe: StableDiffusionInpaintPipeline, num_inference_steps: int = 50, guidance_scale: float = 7.5) -> None:
        self.pipe = pipe
        self.unet = pipe.unet
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale

    @torch.no_grad()
    def __call__(
        self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None
    ) -> PIL.Image.Image:
        return self.pipe(
            prompt=prompt,
            image=image,
            mask_image=mask.float().cpu(),  # the pipeline preprocesses the PIL image on the CPU; the mask must meet it there
            height=image.height,
            width=image.width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
        ).images[0]


class LatentBlendInpainter:
    """Inpainting with the base model alone (Blended Latent Diffusion style).

    Denoise from pure noise with the target text; after every step the region outside the
    mask is replaced by the input's latents noised to the step's target timestep, so only the
    masked region is generated. Used when no inpainting model is configured.
    """

    def __init__(self, diffusion: LatentDiffusion, num_inference_steps: int = 50, guidance_scale: float = 7.5) -> None:
        self.diffusion = diffusion
        self.unet = diffusion.unet
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale

    @torch.no_grad()
    def __call__(
        self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None
    ) -> PIL.Image.Image:
        d = self.diffusion
        z0 = d.encode(image)
        latent_mask = torch.nn.functional.interpolate(mask.to(d.device, d.dtype), size=z0.shape[-2:], mode="nearest")
        timesteps = d.timesteps(self.num_inference_steps, strength=1.0)
        noise = d.noise(tuple(z0.shape), generator)
        known = d.noised_trajectory(z0, noise, timesteps, at="t-1")
        x = d.add_noise(z0, noise, timesteps[0])
        x = d.denoise(
            x,
            timesteps,
            d.guidance_embeddings([prompt]),
            self.guidance_scale,
            after_step=lambda step: blend_latents(step.latents, known[step.index], latent_mask),
        )
        return d.decode(x)[0]
