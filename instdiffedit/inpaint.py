"""The final step of mask-based editing: repaint the masked region with the target text.

Two ways, on every backbone: the family's inpainting twin (a model fine-tuned with the mask and
the masked image as extra inputs: SD-inpainting, SDXL inpainting, FLUX.1 Fill), in our own loop
on the shared diffusion steps; or, where the family has none (SD 3.x, FLUX.1 [schnell]) or none
is configured, latent blending with the base model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.backbones import FAMILY_NAMES, Backbone, backbone_for, blend_latents


class Inpainter(Protocol):
    """Repaints ``mask`` (1 = repaint) of ``image`` (R x R) following ``prompt``.

    ``__call__`` takes one item (mask 1 x 1 x R x R); ``batch`` takes K items (masks
    K x 1 x R x R, one generator each) and gives each what it gets alone. ``denoiser`` is the
    model whose evaluations it spends.
    """

    denoiser: torch.nn.Module

    def __call__(self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None) -> PIL.Image.Image: ...

    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]: ...


class _SingleFromBatch:
    def __call__(self, image: PIL.Image.Image, mask: torch.Tensor, prompt: str, generator: torch.Generator | None) -> PIL.Image.Image:
        return self.batch([image], mask, [prompt], [generator])[0]


class InpaintingModelInpainter(_SingleFromBatch):
    """Inpainting with a family's inpainting twin, as its diffusers pipeline does at strength 1
    (for SD, the InstDiffEdit authors' ``StableDiffusionInpaintPipeline`` call), on the shared
    diffusion steps.

    Gives the pipeline's images: the same preprocessing (the mask binarised at 0.5; the masked
    image is the image where the mask is 0), the same random draws in the same order from each
    item's generator (:meth:`Backbone.inpainting_inputs`), the scheduler the model ships (PNDM for
    SD-inpainting, Euler for SDXL's, flow-matching Euler for FLUX.1 Fill) and the guided step.
    The twin's extra inputs are made once before the loop; each step is one denoiser call for
    all K items (and their CFG rows), through the model's fast path, and nothing in the loop
    waits for the device.

    ``guidance_scale``: default, the twin pipeline's own (7.5 for SD and SDXL, 30 for FLUX.1 Fill).
    ``resolution``: the side of the images it is given (the base model's working size).
    """

    def __init__(
        self,
        pipe: DiffusionPipeline,
        num_inference_steps: int = 50,
        guidance_scale: float | None = None,
        *,
        resolution: int | None = None,
    ) -> None:
        self.backbone = backbone_for(pipe, scheduler=type(pipe.scheduler).__name__, resolution=resolution)
        b = self.backbone
        self.denoiser = b.denoiser
        expected, found = b.twin_in_channels, b.denoiser.config.in_channels
        if expected is None:
            raise ValueError(f"The {FAMILY_NAMES[b.family]} family has no inpainting twin; set model.inpaint to null to inpaint by latent blending.")
        if found != expected:
            raise ValueError(
                f"The inpainting model's denoiser takes {found} input channels; the {FAMILY_NAMES[b.family]} inpainting twin "
                f"takes {expected} (latents, mask, masked-image latents). Set model.inpaint to an inpainting model, "
                "or to null to inpaint by latent blending."
            )
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = b.pipeline_guidance_scale if guidance_scale is None else guidance_scale

    @torch.no_grad()
    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]:
        b = self.backbone
        timesteps = b.timesteps(self.num_inference_steps, strength=1.0)  # before the start latents: Euler's initial sigma depends on them
        pixels = b.preprocess(images)
        repaint = (masks.to(b.device) >= 0.5).to(pixels.dtype)
        x, channels = b.inpainting_inputs(pixels, repaint, generators)
        x = b.denoise(x, timesteps, b.text_guidance(prompts, self.guidance_scale), channels=channels)
        return b.decode(x)


class LatentBlendInpainter(_SingleFromBatch):
    """Inpainting with the base model alone (Blended Latent Diffusion style).

    Denoise from pure noise with the target text; after every step the region outside the
    mask is replaced by the input's latents noised to the step's target timestep, so only the
    masked region is generated. Used when no inpainting model is configured.
    ``guidance_scale``: default, the base pipeline's own (SD 7.5, SDXL 5, SD 3.x 7, FLUX.1 [dev] 3.5).
    """

    def __init__(self, backbone: Backbone, num_inference_steps: int = 50, guidance_scale: float | None = None) -> None:
        self.backbone = backbone
        self.denoiser = backbone.denoiser
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = backbone.pipeline_guidance_scale if guidance_scale is None else guidance_scale

    @torch.no_grad()
    def batch(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        prompts: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> list[PIL.Image.Image]:
        b = self.backbone
        z0 = b.encode(images)
        latent_mask = torch.nn.functional.interpolate(masks.to(b.device, b.dtype), size=z0.shape[-2:], mode="nearest")
        timesteps = b.timesteps(self.num_inference_steps, strength=1.0)
        noise = torch.cat([b.noise((1, *z0.shape[1:]), generator) for generator in generators])
        known = b.noised_trajectory(z0, noise, timesteps, at="t-1")
        x = b.add_noise(z0, noise, timesteps[0])
        x = b.denoise(
            x,
            timesteps,
            b.text_guidance(prompts, self.guidance_scale),
            after_step=lambda step: blend_latents(step.latents, known[step.index], latent_mask),
        )
        return b.decode(x)
