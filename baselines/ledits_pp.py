"""LEDITS++ (Brack et al., CVPR 2024, arXiv 2311.16711) as a baseline, through diffusers' pipeline.

LEDITS++ inverts the image exactly (no caption needed), then re-generates it with semantic
guidance: per edit concept, the guidance term (concept minus unconditional noise estimate) is
gated by an *implicit mask*, the intersection of a cross-attention mask M1 (the concept's tokens'
attention above its ``edit_threshold`` quantile) and a noise-estimate mask M2 (the guidance
term's magnitude above the same quantile). A replacement removes the source concept (reversed
guidance) and adds the target concept.

This wrapper adds no algorithm of its own: it builds ``LEditsPPPipelineStableDiffusion`` from the
base pipeline's components, works around one upstream bug (float timesteps, DDIM only), keeps the
shared UNet's attention processors intact and reads the implicit mask the pipeline stores.
"""

from __future__ import annotations

from typing import Any, Literal

import PIL.Image
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    LEditsPPPipelineStableDiffusion,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)

from baselines.pipeline_editor import PIPELINE_BACKED, MaskedImage, PipelineEditor
from instdiffedit.accounting import PhaseTimer
from instdiffedit.ranges import NonNegative, Side, Steps, Threshold, UnitInterval, checked_ranges
from instdiffedit.registry import register_method


class IntegerTimestepDDIMScheduler(DDIMScheduler):
    """A DDIMScheduler whose ``add_noise`` also accepts float timesteps.

    Works around an upstream bug (diffusers 0.42.1): ``LEditsPPPipelineStableDiffusion.invert``
    noises the image with ``self.scheduler.add_noise(x0, noise, torch.Tensor([t]))``, a float32
    tensor, and ``DDIMScheduler.add_noise`` indexes ``alphas_cumprod`` with it, raising
    "IndexError: tensors used as indices must be long, int, byte or bool tensors". The
    DPM-Solver path is unaffected (it looks timesteps up by value). Timesteps here are integers
    stored as floats, so rounding is exact. Still an instance of DDIMScheduler, so the
    pipeline keeps it and uses its DDIM (edit-friendly DDPM) inversion.
    """

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if torch.is_floating_point(timesteps):
            timesteps = timesteps.round().long()
        return super().add_noise(original_samples, noise, timesteps)


@register_method("ledits_pp", role="baseline", rank=4, quick=("method.num_inversion_steps=10",))
class LeditsPP(PipelineEditor):
    """Edit an image with LEDITS++: exact inversion, then mask-gated semantic guidance.

    ``edit(image, target=..., source=...)`` removes ``source`` and adds ``target`` (LEDITS++'s
    replacement: ``editing_prompt=[source, target]``, ``reverse_editing_direction=[True, False]``);
    without a ``source`` it only adds ``target``. ``prompt`` (a caption) is not used: LEDITS++
    inverts without one. ``mask`` (a ground-truth mask, for oracle methods) is ignored.

    Args (defaults are the diffusers pipeline's, which follow the LEDITS++ paper, unless noted):
        pipe: the base pipeline; its VAE, text encoder, tokenizer and UNet are shared, not copied.
        inpaint_pipe: accepted so every method is built alike; unused.
        num_inversion_steps: steps after skipping (50: our choice, the pipeline's default is 30
            and its documented example uses 50).
        skip: share of the schedule's first (noisiest) steps that are neither inverted nor
            regenerated (0.15). ``int(num_inversion_steps * (1 + skip))`` steps are scheduled and
            the last ``num_inversion_steps`` run.
        edit_guidance_scale: s_e of the paper's eq. 12 (5), for every concept.
        edit_threshold: lambda, the quantile of both masks (0.9: the top 10% of latent pixels).
        edit_warmup_steps: steps without edit guidance at the start (0).
        edit_cooldown_steps: the step from which guidance stops (None: never).
        use_intersect_mask: gate guidance with M1 * M2 (True, the paper's default); False uses
            the noise-estimate mask M2 alone.
        scheduler: "dpmsolver++" is SDE-DPM-Solver++ of order 2, the scheduler LEDITS++
            recommends: its inversion is LEDITS++'s contribution (exact reconstruction in few
            steps) and the pipeline falls back to it for any other scheduler class. "ddim" is
            the edit-friendly DDPM inversion (Huberman-Spiegelglas et al.) that LEDITS (v1) used;
            it goes through :class:`IntegerTimestepDDIMScheduler`.
        mask_from: which of the pipeline's per-step implicit masks becomes ``EditResult.mask``.
            "last" (default, our choice): the mask that gated the target's guidance at the last
            guided step, i.e. the final implicit mask. "majority": pixels gated in at least half
            of the guided steps. Either way ``soft_mask`` is the fraction of guided steps in
            which each pixel was gated (1 = at every step).
        resolution: working resolution in pixels (square; a multiple of 32 as the pipeline
            requires); default, the UNet's native size.
    """

    capabilities = PIPELINE_BACKED  # diffusers' LEditsPPPipelineStableDiffusion is written for SD 1.x/2.x
    pipeline_class = LEditsPPPipelineStableDiffusion
    first_phase = "edit"  # the mask comes with the edit
    resolution_multiple = 32  # the pipeline's requirement

    @checked_ranges
    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        inpaint_pipe: StableDiffusionInpaintPipeline | None = None,
        *,
        num_inversion_steps: Steps = 50,
        skip: Threshold = 0.15,
        edit_guidance_scale: float = 5.0,
        edit_threshold: UnitInterval = 0.9,
        edit_warmup_steps: NonNegative = 0,
        edit_cooldown_steps: NonNegative | None = None,
        use_intersect_mask: bool = True,
        scheduler: Literal["dpmsolver++", "ddim"] = "dpmsolver++",
        mask_from: Literal["last", "majority"] = "last",
        resolution: Side | None = None,
    ) -> None:
        if mask_from not in ("last", "majority"):
            raise ValueError(f"mask_from must be 'last' or 'majority', got {mask_from!r}.")
        first_unguided = num_inversion_steps if edit_cooldown_steps is None else edit_cooldown_steps
        if not 0 <= edit_warmup_steps < min(first_unguided, num_inversion_steps):
            raise ValueError(f"No step would be edit-guided: warm-up {edit_warmup_steps}, cool-down {edit_cooldown_steps}, {num_inversion_steps} steps.")
        self.scheduler = scheduler
        super().__init__(pipe, resolution)
        self.num_inversion_steps = num_inversion_steps
        self.skip = skip
        self.edit_guidance_scale = edit_guidance_scale
        self.edit_threshold = edit_threshold
        self.edit_warmup_steps = edit_warmup_steps
        self.edit_cooldown_steps = edit_cooldown_steps
        self.use_intersect_mask = use_intersect_mask
        self.mask_from = mask_from

    def schedulers(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"scheduler": _scheduler(self.scheduler, config)}

    def pipeline_edit(
        self, work_image: PIL.Image.Image, *, target: str, source: str | None, generator: torch.Generator | None, timer: PhaseTimer
    ) -> MaskedImage:
        """Invert the image, then regenerate it adding ``target`` (and removing ``source``).

        LEDITS++ replaces every attention processor of the UNet (invert: AttnProcessor; call: its
        attention-storing processors) and never puts them back; :meth:`PipelineEditor.edit` does.
        """
        concepts, reverse = ([source, target], [True, False]) if source else ([target], [False])
        size = self.resolution
        with timer.phase("edit"):
            self.pipeline.invert(
                image=work_image,
                source_prompt="",
                num_inversion_steps=self.num_inversion_steps,
                skip=self.skip,
                generator=generator,
                height=size,
                width=size,
            )
            edited = self.pipeline(
                editing_prompt=concepts,
                reverse_editing_direction=reverse,
                edit_guidance_scale=self.edit_guidance_scale,
                edit_threshold=self.edit_threshold,
                edit_warmup_steps=self.edit_warmup_steps,
                edit_cooldown_steps=self.edit_cooldown_steps,
                use_intersect_mask=self.use_intersect_mask,
                generator=generator,
                output_type="pil",
            ).images[0]
            soft, binary = self.implicit_mask(len(concepts) - 1)
        return edited, binary, soft

    def implicit_mask(self, concept: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The last edit's implicit mask for one concept at latent size: (soft, binary), h x w.

        Reads the pipeline's ``activation_mask`` attribute (an internal of diffusers' pipeline,
        not a documented output): steps x concepts x batch x channels x h x w, for each step the
        0/1 mask that gated the concept's guidance (M1 * M2, or M1 alone while t > 800 where the
        pipeline skips M2), all zeros at steps without guidance. The four channels are copies.
        """
        stored = getattr(self.pipeline, "activation_mask", None)
        if not isinstance(stored, torch.Tensor) or stored.ndim != 6:
            raise RuntimeError(
                "LEditsPPPipelineStableDiffusion no longer exposes `activation_mask` as "
                "steps x concepts x batch x channels x h x w; update LeditsPP.implicit_mask."
            )
        steps = stored.shape[0]
        stop = steps if self.edit_cooldown_steps is None else min(self.edit_cooldown_steps, steps)
        per_step = stored[self.edit_warmup_steps : stop, concept, 0, 0].float()
        soft = per_step.mean(dim=0)
        binary = per_step[-1] if self.mask_from == "last" else (soft >= 0.5).float()
        return soft, binary


def _scheduler(name: str, config: dict) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """A fresh scheduler over the model's noise schedule (never the base pipeline's instance)."""
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="sde-dpmsolver++", solver_order=2)
    if name == "ddim":
        # clip_sample=False: the pipeline forces it anyway (latents are not in [-1, 1]).
        return IntegerTimestepDDIMScheduler.from_config(config, clip_sample=False)
    raise ValueError(f"scheduler must be 'dpmsolver++' or 'ddim', got {name!r}.")
