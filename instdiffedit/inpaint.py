"""The final step of mask-based editing: repaint the masked region with the target text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import PIL.Image
import torch
from diffusers import StableDiffusionInpaintPipeline
from diffusers.utils.torch_utils import randn_tensor

from instdiffedit.diffusion import LatentDiffusion, blend_latents


class Inpainter(Protocol):
    """Repaints ``mask`` (1 = repaint) of ``image`` (R x R) following ``prompt``.

    ``__call__`` takes one item (mask 1 x 1 x R x R); ``batch`` takes K items (masks
    K x 1 x R x R, one generator each) and gives each what it gets alone.
    """

    unet: torch.nn.Module

    def __call__(
        self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None
    ) -> PIL.Image.Image: ...

    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]: ...


class _SingleFromBatch:
    def __call__(
        self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None
    ) -> PIL.Image.Image:
        return self.batch([image], mask, [prompt], [generator])[0]


class InpaintingModelInpainter(_SingleFromBatch):
    """Inpainting with an SD-inpainting model (its 9-channel UNet), as the InstDiffEdit authors
    did with diffusers' ``StableDiffusionInpaintPipeline``, on the shared diffusion steps.

    Gives the pipeline's images at strength 1 (the authors' call): the same preprocessing (the
    mask binarised at 0.5; the masked image is the image where the mask is 0), the same
    random draws in the same order from each item's generator (the initial noise, then the
    sample of the VAE posterior of the masked image), the scheduler the model ships (PNDM for
    SD-inpainting) and the guided step. The mask and masked-image latents are made once
    before the loop; each step is one UNet call on ``[latents | mask | masked-image latents]``
    for all K items and their CFG rows, through the model's fast path, and nothing in the
    loop waits for the device.

    ``resolution``: the side of the images it is given (the base model's working size).
    """

    def __init__(
        self,
        pipe: StableDiffusionInpaintPipeline,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        *,
        resolution: int | None = None,
    ) -> None:
        self.diffusion = LatentDiffusion(pipe, scheduler=type(pipe.scheduler).__name__, resolution=resolution)
        self.unet = pipe.unet
        latent_channels = pipe.vae.config.latent_channels
        if pipe.unet.config.in_channels != 2 * latent_channels + 1:
            raise ValueError(
                f"The inpainting model's UNet takes {pipe.unet.config.in_channels} input channels; an SD-inpainting "
                f"UNet takes {2 * latent_channels + 1} (latents, mask, masked-image latents). "
                "Set model.inpaint to an SD-inpainting model, or to null to inpaint by latent blending."
            )
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale

    @torch.no_grad()
    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]:
        d = self.diffusion
        pixels = d.preprocess(images)
        keep = (masks.to(d.device) < 0.5).to(pixels.dtype)  # 1 where the image stays (the binarised mask's 0)
        latent_mask = torch.nn.functional.interpolate(1 - keep, size=d.latent_size)  # nearest, as the pipeline
        shape = (1, d.vae.config.latent_channels, *d.latent_size)
        noise = torch.cat([d.noise(shape, generator) for generator in generators])
        posterior = d.vae.encode(pixels * keep).latent_dist
        draws = torch.cat([randn_tensor(shape, generator=g, device=d.device, dtype=posterior.mean.dtype) for g in generators])
        masked_latents = d.vae.config.scaling_factor * (posterior.mean + posterior.std * draws)
        timesteps = d.timesteps(self.num_inference_steps, strength=1.0)
        x = d.denoise(
            noise * d.scheduler.init_noise_sigma,
            timesteps,
            d.guidance_embeddings(list(prompts)),
            self.guidance_scale,
            conditioning=torch.cat([latent_mask, masked_latents], dim=1),
        )
        return d.decode(x)


class LatentBlendInpainter(_SingleFromBatch):
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
    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]:
        d = self.diffusion
        z0 = d.encode(images)
        latent_mask = torch.nn.functional.interpolate(masks.to(d.device, d.dtype), size=z0.shape[-2:], mode="nearest")
        timesteps = d.timesteps(self.num_inference_steps, strength=1.0)
        noise = torch.cat([d.noise((1, *z0.shape[1:]), generator) for generator in generators])
        known = d.noised_trajectory(z0, noise, timesteps, at="t-1")
        x = d.add_noise(z0, noise, timesteps[0])
        x = d.denoise(
            x,
            timesteps,
            d.guidance_embeddings(list(prompts)),
            self.guidance_scale,
            after_step=lambda step: blend_latents(step.latents, known[step.index], latent_mask),
        )
        return d.decode(x)
