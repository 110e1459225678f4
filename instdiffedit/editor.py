"""InstDiffEdit: instant masks from the diffusion model's own cross-attention, during denoising.

Zou et al., "Towards Efficient Diffusion-Based Image Editing with Instant Attention Masks",
AAAI 2024 (arXiv 2401.07709). Where the paper is silent, the authors' code decides; choices of
ours are arguments, documented where they are declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

from instdiffedit.accounting import PhaseTimer, count_unet_evals
from instdiffedit.attention import capture_cross_attention
from instdiffedit.diffusion import LatentDiffusion, blend_latents
from instdiffedit.inpaint import Inpainter, LatentBlendInpainter, PipelineInpainter
from instdiffedit.refine import MaskRefiner, word_maps
from instdiffedit.tokens import TokenLayout, token_layout
from instdiffedit.types import EditResult


@dataclass
class InstantMasks:
    """The running state of InstDiffEdit's masks over the denoising steps.

    Attention is averaged over the noise samples and cumulatively over the steps so far; the
    word positions are fixed at the first step and reused (as the authors do).
    """

    refiner: MaskRefiner
    layout: TokenLayout
    size: tuple[int, int]
    steps: int = 0
    attention: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    soft: torch.Tensor | None = None
    history: list[torch.Tensor] = field(default_factory=list)

    def update(self, step_attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold in one step's maps (R x h x w x L); return this step's soft and binary masks."""
        step_mean = step_attention.mean(dim=0)
        self.attention = step_mean if self.attention is None else self.attention + step_mean
        self.steps += 1
        maps = word_maps(self.attention / self.steps, self.layout, self.size)
        if self.positions is None:
            self.positions = self.refiner.positions(maps)
        self.soft, binary = self.refiner(maps, self.positions)
        self.history.append(binary)
        return self.soft, binary


def _to_image_size(mask: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """An h x w map resized to the input image's (H, W), on the CPU, float32."""
    resized = F.interpolate(mask[None, None].float(), size=size, mode=mode)[0, 0]
    return resized.clamp(0, 1).cpu()


class InstDiffEdit:
    """Edit an image towards a target text with InstDiffEdit's instant attention masks.

    Plug-and-play over any diffusers Stable Diffusion 1.x/2.x pipeline::

        editor = InstDiffEdit(pipe, inpaint_pipe)
        result = editor.edit(image, target="a raccoon", generator=torch.Generator().manual_seed(0))

    Args (defaults are the paper's):
        pipe: the base text-to-image pipeline (SD 1.4 in the paper).
        inpaint_pipe: an SD-inpainting pipeline for the final step; without one, the base
            model inpaints by latent blending (our choice, for models without an inpainting twin).
        num_inference_steps, strength: the LMS schedule and the share of it that is run
            (50 and 0.5: the last 25 steps).
        guidance_scale: classifier-free guidance, unconditional prompt "".
        num_noises: B noises denoised together; their attention is averaged.
        th1, th2, threshold, blur_kernel, blur_sigma, blur_passes: see :class:`MaskRefiner`.
        attention_downsample: capture cross-attention at latent / this (16 x 16 for SD at 512 px).
        blend_with: "t" blends with the original re-noised at the current timestep (the
            authors' code); "t-1" at the step's target timestep (the paper's figure).
        output: "inpaint" repaints the final mask (the paper); "decode" decodes the first
            noise's mask-guided latents instead (the no-inpainting ablation).
        inpaint_steps, inpaint_guidance_scale: the final inpainting's schedule.
        scheduler: the diffusers scheduler class for the mask-guided loop.
        resolution: working resolution in pixels; default, the UNet's native size.
    """

    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        inpaint_pipe: StableDiffusionInpaintPipeline | None = None,
        *,
        num_inference_steps: int = 50,
        strength: float = 0.5,
        guidance_scale: float = 7.5,
        num_noises: int = 3,
        th1: float = 0.9,
        th2: float = 0.6,
        threshold: float = 0.2,
        blur_kernel: int = 5,
        blur_sigma: float = 1.1,
        blur_passes: int = 2,
        attention_downsample: int = 4,
        blend_with: Literal["t", "t-1"] = "t",
        output: Literal["inpaint", "decode"] = "inpaint",
        inpaint_steps: int = 50,
        inpaint_guidance_scale: float = 7.5,
        scheduler: str = "LMSDiscreteScheduler",
        resolution: int | None = None,
    ) -> None:
        if output not in ("inpaint", "decode"):
            raise ValueError(f"output must be 'inpaint' or 'decode', got {output!r}.")
        if blend_with not in ("t", "t-1"):
            raise ValueError(f"blend_with must be 't' or 't-1', got {blend_with!r}.")
        if num_noises < 1:
            raise ValueError(f"num_noises must be at least 1, got {num_noises}.")
        self.diffusion = LatentDiffusion(pipe, scheduler=scheduler, resolution=resolution)
        self.refiner = MaskRefiner(th1, th2, threshold, blur_kernel, blur_sigma, blur_passes)
        self.num_inference_steps = num_inference_steps
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.num_noises = num_noises
        self.attention_downsample = attention_downsample
        self.blend_with = blend_with
        self.output = output
        self.inpainter: Inpainter = (
            PipelineInpainter(inpaint_pipe, inpaint_steps, inpaint_guidance_scale)
            if inpaint_pipe is not None
            else LatentBlendInpainter(self.diffusion, inpaint_steps, inpaint_guidance_scale)
        )

    @torch.no_grad()
    def mask_guided_edit(
        self, image: PIL.Image.Image, target: str, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, InstantMasks]:
        """The mask-guided denoising loop: the final latents (B x C x h x w) and the mask state.

        Per step: one UNet call on ``[B uncond | B cond]``; the conditional cross-attention
        updates the instant mask M_t; then x_{t-1} = M_t * x' + (1 - M_t) * y_t, with y_t the
        original re-noised with the same noises.
        """
        d = self.diffusion
        z0 = d.encode(image)
        timesteps = d.timesteps(self.num_inference_steps, self.strength)
        noise = d.noise((self.num_noises, *z0.shape[1:]), generator)
        renoised = d.noised_trajectory(z0, noise, timesteps, at="t" if self.blend_with == "t" else "t-1")
        masks = InstantMasks(self.refiner, token_layout(d.tokenizer, target), d.latent_size)

        def guide(i: int, t: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
            _, mask = masks.update(store.take())
            return blend_latents(x_prev, renoised[i], mask)

        x = d.add_noise(z0, noise, timesteps[0])
        embeddings = d.guidance_embeddings([target] * self.num_noises)
        with capture_cross_attention(d.unet, d.latent_size, self.attention_downsample) as store:
            x = d.denoise(x, timesteps, embeddings, self.guidance_scale, after_step=guide)
        return x, masks

    def edit(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None = None,
        prompt: str | None = None,
        generator: torch.Generator | None = None,
    ) -> EditResult:
        """Edit ``image`` towards ``target`` (the target text only; ``source``/``prompt`` unused)."""
        d = self.diffusion
        timer = PhaseTimer(d.device)
        with count_unet_evals(d.unet, self.inpainter.unet) as counter, timer.phase("total"):
            with timer.phase("mask"):
                latents, masks = self.mask_guided_edit(image, target, generator)
                final = masks.history[-1]
            if self.output == "inpaint":
                with timer.phase("inpaint"):
                    work_image = image.convert("RGB").resize((d.resolution,) * 2, PIL.Image.Resampling.BICUBIC)
                    work_mask = F.interpolate(final[None, None], size=(d.resolution,) * 2, mode="nearest")
                    edited = self.inpainter(work_image, work_mask, target, generator)
            else:
                with timer.phase("edit"):
                    edited = d.decode(latents[:1])[0]
            with timer.phase("edit"):
                edited = edited.resize(image.size, PIL.Image.Resampling.BICUBIC)
                size = (image.height, image.width)
                mask = _to_image_size(final, size, "nearest")
                soft_mask = _to_image_size(masks.soft, size, "bilinear")
        return EditResult(edited, mask, soft_mask, timer.timings, counter.count)
