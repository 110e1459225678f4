"""SDEdit (Meng et al., ICLR 2022, arXiv 2108.01073): noise the image part-way, denoise with the target text."""

from __future__ import annotations

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.backbones import Backbone
from instdiffedit.ranges import Fraction, Side, Steps, checked_ranges
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, StagedEditor


@register_method(
    "sdedit",
    role="baseline",
    rank=3,
    quick=("method.num_inference_steps=10",),
    warmup=("method.num_inference_steps=4",),  # strength 0.5: two steps
)
class SDEdit(StagedEditor):
    """Strength 0.5 (the last 25 of 50 steps; LMS on SD 1.x/2.x), CFG 7.5 on the target text, decode. No mask."""

    capabilities = STAGED
    first_stage_phase = "edit"

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        num_inference_steps: Steps = 50,
        strength: Fraction = 0.5,
        guidance_scale: float = 7.5,
        scheduler: str | None = None,
        resolution: Side | None = None,
    ) -> None:
        super().__init__(pipe, None, output="decode", scheduler=scheduler, resolution=resolution)
        self.num_inference_steps = num_inference_steps
        self.strength = strength
        self.guidance_scale = guidance_scale

    @torch.no_grad()
    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        d = self.backbone
        z0 = d.encode(image)
        timesteps = d.timesteps(self.num_inference_steps, self.strength)
        x = d.add_noise(z0, d.noise(tuple(z0.shape), generator), timesteps[0])
        return FirstStage(latents=d.denoise(x, timesteps, d.text_guidance([target], self.guidance_scale)))
