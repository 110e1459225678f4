"""DiffEdit's mask as the InstDiffEdit authors ran it, followed by inpainting.

Couairon et al., "DiffEdit: Diffusion-based semantic image editing with mask guidance"
(arXiv 2210.11427); the protocol is the InstDiffEdit authors' baseline: for each of n noises,
the strength-0.5 denoising is run to the end twice, conditioned on the source and on the target
text; the mask is where the last noise estimates differ: mean over the noises, min-max, blur,
threshold. On every backbone: flow-matching models (SD 3.x, FLUX.1) predict velocities, which
are turned into noise estimates first (as v-prediction outputs are). The original paper's
variant (DDIM encoding, a single noise estimate per noise) is :mod:`baselines.diffedit_ddim`.
"""

from __future__ import annotations

from typing import Annotated

import PIL.Image
import torch
from annotated_types import Ge
from diffusers import DiffusionPipeline

from instdiffedit.arithmetic import Arithmetic, uint8_cast
from instdiffedit.backbones import Backbone, DenoisingStep
from instdiffedit.ranges import Count, Fraction, Side, Steps, Threshold, checked_ranges
from instdiffedit.refine import blur, minmax
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, Output, StagedEditor


@register_method(
    "diffedit",
    role="baseline",
    rank=1,
    quick=("method.num_noises=2", "method.num_inference_steps=10", "method.inpaint_steps=4"),
    warmup=("method.num_inference_steps=4", "method.inpaint_steps=2"),  # strength 0.5: two steps of each loop
)
class DiffEdit(StagedEditor):
    """DiffEdit mask (authors' protocol) + inpainting with the target text.

    Args (defaults are the InstDiffEdit authors'):
        num_noises: n noises whose difference maps are averaged.
        num_inference_steps, strength, guidance_scale: each of the 2n runs (last 25 of 50, CFG 7.5).
        threshold, blur_kernel, blur_sigma: min-max, one ``cv2.GaussianBlur(m, (5, 5), 1)``, > 0.3
            (no second min-max after the blur, as the authors' code).
        arithmetic: "authors" casts the min-max map to uint8 levels before the blur and resizes
            the mask for the inpainting as the authors' code (see :class:`StagedEditor`); "float"
            keeps the float map and resizes with nearest.
        unet_batch_size: denoiser rows per call; the n noises x 2 texts x CFG = 40 rows are split
            into calls of at most this many (results do not depend on it).
        output, inpaint_steps, inpaint_guidance_scale, scheduler, resolution: see :class:`StagedEditor`.
    """

    capabilities = STAGED

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        num_noises: Count = 10,
        num_inference_steps: Steps = 50,
        strength: Fraction = 0.5,
        guidance_scale: float = 7.5,
        threshold: Threshold = 0.3,
        blur_kernel: Side = 5,
        blur_sigma: float = 1.0,
        unet_batch_size: Annotated[int, Ge(2)] = 40,  # the two texts' rows of one noise, at least
        output: Output = "inpaint",
        inpaint_steps: Steps = 50,
        inpaint_guidance_scale: float | None = None,
        scheduler: str | None = None,
        resolution: Side | None = None,
        arithmetic: Arithmetic = "authors",
    ) -> None:
        super().__init__(
            pipe,
            inpaint_pipe,
            output=output,
            inpaint_steps=inpaint_steps,
            inpaint_guidance_scale=inpaint_guidance_scale,
            scheduler=scheduler,
            resolution=resolution,
            arithmetic=arithmetic,
        )
        self.num_noises = num_noises
        self.num_inference_steps = num_inference_steps
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.threshold = threshold
        self.blur_kernel = blur_kernel
        self.blur_sigma = blur_sigma
        self.unet_batch_size = unet_batch_size

    @torch.no_grad()
    def difference_map(self, image: PIL.Image.Image, source: str, target: str, generator: torch.Generator | None) -> torch.Tensor:
        """Mean over the noises of ||e_source - e_target||_2 over latent channels (h x w).

        e are the guided noise estimates of the last step (v-prediction and flow-matching outputs
        are converted to noise estimates first). All 2n runs share one batch ``[source x n |
        target x n]`` (noise i in rows i and n + i) and one scheduler, so the n noises x 2 texts
        x CFG go through the denoiser together.
        """
        d = self.backbone
        n = self.num_noises
        z0 = d.encode(image)
        timesteps = d.timesteps(self.num_inference_steps, self.strength)
        noise = d.noise((n, *z0.shape[1:]), generator).repeat(2, 1, 1, 1)
        x = d.add_noise(z0, noise, timesteps[0])
        last = {"sample": x}  # the last step's input latents and guided model output

        def keep_last_step(step: DenoisingStep) -> torch.Tensor:
            if step.index == len(timesteps) - 2:
                last["sample"] = step.latents
            if step.index == len(timesteps) - 1:
                last["output"] = step.prediction
            return step.latents

        d.denoise(
            x,
            timesteps,
            d.text_guidance([source] * n + [target] * n, self.guidance_scale),
            after_step=keep_last_step,
            max_rows=self.unet_batch_size,
        )
        eps = d.noise_estimate(last["output"].float(), last["sample"].float(), timesteps[-1])
        eps_source, eps_target = eps.chunk(2)
        return (eps_source - eps_target).norm(dim=1).mean(dim=0)

    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        """Without a source text the reference is the unconditional text "" (as DiffEdit allows)."""
        levels = minmax(self.difference_map(image, source or "", target, generator)) * 255
        if self.arithmetic == "authors":
            levels = uint8_cast(levels)
        blurred = blur(levels[None], self.blur_kernel, self.blur_sigma)[0]
        return FirstStage(mask=(blurred > 255 * self.threshold).float(), soft_mask=blurred / 255)
