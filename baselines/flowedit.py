"""FlowEdit (Kulikov et al., 2024, arXiv 2412.08629): inversion-free editing with a flow model.

FlowEdit never inverts the image. It integrates an ODE from the source latents x_src whose
velocity is the difference between the target- and source-conditioned velocities along a
coupled pair of noisy samples: at each timestep t (sigma s, next sigma s'), for each of
``n_avg`` fresh noises e,

    z_src = (1 - s) x_src + s e,    z_tar = z_edit + z_src - x_src,
    V = mean over the noises of  v(z_tar, target, target guidance) - v(z_src, source, source guidance),
    z_edit <- z_edit + (s' - s) V       (the flow-matching Euler step).

Only the last ``n_max`` of ``num_inference_steps`` steps run (the noisier ones are skipped);
for the last ``n_min`` of them it switches to plain sampling with the target text from
z_edit + z_src - x_src, z_src noised with one more noise. With ``n_min = 0`` (the published
setting) the result is z_edit. There is no mask: the image is decoded from the latents.

On the flow-matching backbones only (SD 3.x and FLUX.1): the arithmetic above is rectified
flow's. What differs between the two (CFG with the empty text on SD 3.x, the embedded guidance
of FLUX.1 [dev], the sigmas) is the backbone's; the defaults are the authors' per family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.accounting import count_denoiser_evals
from instdiffedit.backbones import (
    Backbone,
    DenoisingStep,
    TextGuidance,
    blend_latents,
    check_family,
    family_of,
)
from instdiffedit.ranges import Count, NonNegative, Side, Steps, checked_ranges
from instdiffedit.region_editors import RegionEdits
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, StagedEditor
from instdiffedit.types import Capabilities


@dataclass(frozen=True)
class PublishedSettings:
    """The settings the FlowEdit authors publish for one model family."""

    num_inference_steps: int
    n_max: int
    source_guidance_scale: float
    target_guidance_scale: float


PUBLISHED: dict[str, PublishedSettings] = {
    "sd3": PublishedSettings(num_inference_steps=50, n_max=33, source_guidance_scale=3.5, target_guidance_scale=13.5),
    "flux": PublishedSettings(num_inference_steps=28, n_max=24, source_guidance_scale=1.5, target_guidance_scale=5.5),
}
"""The authors' settings for SD 3 and FLUX.1 [dev] (both with n_min = 0 and n_avg = 1): the
defaults of the settings left at None, by the model's family."""


@register_method(
    "flowedit",
    role="baseline",
    rank=5,
    quick=("method.num_inference_steps=10", "method.n_max=7"),
    warmup=("method.num_inference_steps=4", "method.n_max=2"),
)
class FlowEdit(StagedEditor):
    """FlowEdit between the source and the target text; decoded, no mask.

    Args (None: the published setting of the model's family, :data:`PUBLISHED`):
        num_inference_steps: the schedule's steps T.
        n_max: the FlowEdit ODE runs the last ``n_max`` of the T steps (0: the source's
            reconstruction).
        n_min: of those, the last ``n_min`` are plain sampling with the target text.
        n_avg: noises per step whose velocity differences are averaged.
        source_guidance_scale, target_guidance_scale: the guidance of the source and target
            velocities (CFG on SD 3.x; the embedded guidance of FLUX.1 [dev]; FLUX.1 [schnell]
            takes none).
        resolution: working resolution in pixels; default, the model's native size.

    Without a source text the source velocity is conditioned on the empty text.
    """

    first_stage_phase = "edit"
    capabilities = replace(STAGED, families=frozenset({"sd3", "flux"}))
    """A staged method's, on the flow-matching families only: FlowEdit's step is rectified flow's Euler step."""

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        num_inference_steps: Steps | None = None,
        n_max: NonNegative | None = None,
        n_min: NonNegative = 0,
        n_avg: Count = 1,
        source_guidance_scale: float | None = None,
        target_guidance_scale: float | None = None,
        resolution: Side | None = None,
    ) -> None:
        family = family_of(pipe)
        check_family(type(self), family)  # before the published settings are looked up
        published = PUBLISHED[family]
        self.num_inference_steps = published.num_inference_steps if num_inference_steps is None else num_inference_steps
        self.n_max = published.n_max if n_max is None else n_max
        self.n_min = n_min
        self.n_avg = n_avg
        self.source_guidance_scale = published.source_guidance_scale if source_guidance_scale is None else source_guidance_scale
        self.target_guidance_scale = published.target_guidance_scale if target_guidance_scale is None else target_guidance_scale
        if not 0 <= self.n_min <= self.n_max <= self.num_inference_steps:
            raise ValueError(
                f"FlowEdit needs 0 <= n_min <= n_max <= num_inference_steps, got n_min={self.n_min}, "
                f"n_max={self.n_max}, num_inference_steps={self.num_inference_steps}."
            )
        super().__init__(pipe, None, output="decode", resolution=resolution)

    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        """FlowEdit edits the whole image; ``mask`` (a ground-truth mask) is not used."""
        return FirstStage(latents=self.edited_latents(image, target=target, source=source, generator=generator))

    @torch.no_grad()
    def edited_latents(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        generator: torch.Generator | None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The edited latents. Every noise is drawn from ``generator`` and every noised source computed
        before the loop (the schedule's timestep look-ups are host work): ``n_avg`` noises per FlowEdit
        step, in step order, then the noise of the switch to plain sampling (if ``n_min`` > 0).

        ``keep`` (h x w, any resolution; 1 = edit) restricts the edit to a region: after every step the
        latents outside it are the source's again (FlowEdit's latents stay clean ones throughout, so
        the source's own latents are the ones to keep; with ``n_min`` > 0 the last steps' are noisy, so
        a region needs ``n_min`` = 0).
        """
        d = self.backbone
        x_src = d.encode(image)
        if self.n_max == 0:
            return x_src
        timesteps = d.last_timesteps(self.num_inference_steps, self.n_max)
        flow_steps = self.n_max - self.n_min
        noises = d.noise((flow_steps * self.n_avg, *x_src.shape[1:]), generator).unflatten(0, (flow_steps, self.n_avg))
        noised_sources = [d.add_noise(x_src, noise, t) for noise, t in zip(noises, timesteps[:flow_steps], strict=True)]
        # The source and the target velocities of a step in one denoiser call, as the authors batch them.
        source_and_target = TextGuidance.stack(
            d.text_guidance([source or ""] * self.n_avg, self.source_guidance_scale),
            d.text_guidance([target] * self.n_avg, self.target_guidance_scale),
        )
        target_alone = d.text_guidance([target], self.target_guidance_scale)

        def predict(index: int, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if index >= flow_steps:  # plain sampling from the target's sample
                return d.guided_prediction(z, t, target_alone)
            z_src = noised_sources[index]
            v_src, v_tar = d.guided_prediction(torch.cat([z_src, z + z_src - x_src]), t, source_and_target).chunk(2)
            return (v_tar - v_src).mean(dim=0, keepdim=True)

        z = x_src
        after_step = None
        if keep is not None:
            if self.n_min:
                raise ValueError(f"FlowEdit restricted to a region needs n_min=0 (its latents stay clean ones), got n_min={self.n_min}.")
            region = torch.nn.functional.interpolate(keep[None, None].to(x_src.device, torch.float32), size=x_src.shape[-2:], mode="nearest")

            def after_step(step: DenoisingStep) -> torch.Tensor:
                return blend_latents(step.latents, x_src, region)

        elif self.n_min:
            # At the switch the loop goes on from z_edit + z_src - x_src, z_src: x_src noised to the switch's timestep.
            switch_offset = d.add_noise(x_src, d.noise(tuple(x_src.shape), generator), timesteps[flow_steps]) - x_src
            if flow_steps == 0:
                z = x_src + switch_offset
            else:

                def after_step(step: DenoisingStep) -> torch.Tensor:
                    return step.latents + switch_offset if step.index == flow_steps - 1 else step.latents

        return d.sample_loop(z, timesteps, predict, after_step)


class FlowEditInMask:
    """FlowEdit restricted to a mask, as a region editor (:mod:`instdiffedit.region_editors`): outside
    the mask the latents stay the source's at every step, so only the masked region follows the
    target (see :meth:`FlowEdit.edited_latents`). Settings as :class:`FlowEdit`'s (None: the published
    ones of the model's family), with ``n_min`` = 0.
    """

    capabilities: ClassVar[Capabilities] = FlowEdit.capabilities

    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        num_inference_steps: int | None = None,
        n_max: int | None = None,
        n_avg: int = 1,
        source_guidance_scale: float | None = None,
        target_guidance_scale: float | None = None,
    ) -> None:
        """``inpaint_pipe`` is not used: FlowEdit edits with the base model."""
        self.flowedit = FlowEdit(
            pipe,
            num_inference_steps=num_inference_steps,
            n_max=n_max,
            n_avg=n_avg,
            source_guidance_scale=source_guidance_scale,
            target_guidance_scale=target_guidance_scale,
        )

    def __call__(
        self,
        images: Sequence[PIL.Image.Image],
        masks: torch.Tensor,
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        generators: Sequence[torch.Generator | None],
    ) -> RegionEdits:
        d = self.flowedit.backbone
        with count_denoiser_evals(d.denoiser) as counter:
            latents = [
                self.flowedit.edited_latents(image, target=target, source=source, generator=generator, keep=mask[0])
                for image, mask, target, source, generator in zip(images, masks, targets, sources, generators, strict=True)
            ]
            images = d.decode(torch.cat(latents))
        return RegionEdits(images, counter.count)
