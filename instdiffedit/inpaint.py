"""The final step of mask-based editing: repaint the masked region with the target text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import PIL.Image
import torch
from diffusers import StableDiffusionInpaintPipeline

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


class PipelineInpainter(_SingleFromBatch):
    """A diffusers SD-inpainting pipeline (9-channel UNet), as the InstDiffEdit authors used.

    The prompts' embeddings are computed once per prompt with the pipeline's own text encoder
    (exactly what the pipeline would compute at every call) and handed to it.
    """

    def __init__(self, pipe: StableDiffusionInpaintPipeline, num_inference_steps: int = 50, guidance_scale: float = 7.5) -> None:
        self.pipe = pipe
        self.unet = pipe.unet
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self._embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _embed(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) embeddings of ``prompt``, as the pipeline encodes them."""
        if prompt not in self._embeddings:
            cond, uncond = self.pipe.encode_prompt(prompt, self.pipe.device, 1, True, None)
            self._embeddings[prompt] = cond, uncond
        return self._embeddings[prompt]

    @torch.no_grad()
    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]:
        cond, uncond = zip(*map(self._embed, prompts))
        single = len(images) == 1
        if not single and any(g is None for g in generators):
            raise ValueError("Batched inpainting needs one generator per item.")
        return self.pipe(
            prompt_embeds=torch.cat(cond),
            negative_prompt_embeds=torch.cat(uncond),
            image=images[0] if single else list(images),
            mask_image=masks.float().cpu(),  # the pipeline preprocesses the PIL image on the CPU; the mask must meet it there
            height=images[0].height,
            width=images[0].width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generators[0] if single else list(generators),
        ).images


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
