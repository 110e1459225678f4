"""InstDiffEdit: instant masks from the diffusion model's own cross-attention, during denoising.

Zou et al., "Towards Efficient Diffusion-Based Image Editing with Instant Attention Masks",
AAAI 2024 (arXiv 2401.07709). Where the paper is silent, the authors' code decides; choices of
ours are arguments, documented where they are declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline

from instdiffedit.arithmetic import Arithmetic
from instdiffedit.backbones import (
    AttentionOptions,
    Backbone,
    DenoisingStep,
    blend_latents,
)
from instdiffedit.joint_attention import Normaliser
from instdiffedit.ranges import Count, Fraction, NonNegative, Side, Steps, Threshold, UnitInterval, checked_ranges
from instdiffedit.refine import MaskRefiner
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, Output, StagedEditor
from instdiffedit.token_references import Reference, check_text_options
from instdiffedit.tokens import TokenLayout


@dataclass
class InstantMasks:
    """The running state of InstDiffEdit's masks over the denoising steps.

    Attention is averaged over the noise samples and cumulatively over the steps so far; the
    word positions are fixed at the first step and reused (as the authors do).

    The masks are made on the ``size`` grid (the paper's 64 x 64), so that the blur and the
    threshold act at the same scale relative to the image for any model; each step's mask is
    then resized to ``latent_size`` (area, then >= 1/2) for the blend. For SD 1.x at 512 px the
    two sizes are equal.
    """

    refiner: MaskRefiner
    layout: TokenLayout
    size: tuple[int, int]
    latent_size: tuple[int, int]
    steps: int = 0
    attention: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    soft: torch.Tensor | None = None  # the latest soft mask on the ``size`` grid
    binary: torch.Tensor | None = None  # the latest binary mask on the ``size`` grid
    history: list[torch.Tensor] = field(default_factory=list)  # each step's binary mask at ``latent_size``

    def update(self, step_attention: torch.Tensor) -> torch.Tensor:
        """Fold in one step's maps (R x h x w x L); return this step's binary mask at the latent size."""
        step_mean = step_attention.mean(dim=0)
        self.attention = step_mean if self.attention is None else self.attention + step_mean
        self.steps += 1
        maps = self.refiner.word_maps(self.attention / self.steps, self.layout, self.size)
        if self.positions is None:
            self.positions = self.refiner.positions(maps)
        self.soft, self.binary = self.refiner(maps, self.positions)
        latent = self.binary
        if self.size != self.latent_size:
            latent = (F.interpolate(self.binary[None, None], size=self.latent_size, mode="area")[0, 0] >= 0.5).to(self.binary.dtype)
        self.history.append(latent)
        return latent


@register_method(
    "instdiffedit",
    role="method",
    rank=1,
    quick=("method.num_inference_steps=10", "method.inpaint_steps=4"),
    warmup=("method.num_inference_steps=4", "method.inpaint_steps=2"),  # strength 0.5: two steps of each loop
)
@register_method("no_mask", role="ablation", rank=1, quick=("method.num_inference_steps=10",), warmup=("method.num_inference_steps=4",))  # two steps
class InstDiffEdit(StagedEditor):
    """Edit an image towards a target text with InstDiffEdit's instant attention masks.

    Plug-and-play over a diffusers pipeline of any family: SD 1.x/2.x (the paper's), SDXL,
    SD 3.x, FLUX.1 (:mod:`instdiffedit.backbones`)::

        editor = InstDiffEdit(pipe, inpaint_pipe)
        result = editor.edit(image, target="a raccoon", generator=torch.Generator().manual_seed(0))

    Args (defaults are the paper's):
        pipe: the base text-to-image pipeline (SD 1.4 in the paper), or a backbone.
        inpaint_pipe: the family's inpainting twin for the final step (SD-inpainting in the
            paper); without one, the base model inpaints by latent blending (our choice, for
            models without an inpainting twin).
        num_inference_steps, strength: the schedule and the share of it that is run
            (50 and 0.5: the last 25 steps).
        guidance_scale: classifier-free guidance, unconditional prompt "" (FLUX.1 [dev]: the
            guidance scale the model takes as an input; [schnell]: unused).
        num_noises: B noises denoised together; their attention is averaged.
        th1, th2, threshold, blur_kernel, blur_sigma, blur_passes: see :class:`MaskRefiner`
            (``blur_sigma=0``: OpenCV's fixed 5-tap table, as the authors' ``GaussianBlur(m, (5, 5), 0)``).
        arithmetic: "authors" computes the word maps and the mask handed to the inpainting with
            the authors' arithmetic (uint8 casts, PIL's bicubic, the inpainting pipeline's 0.5
            binarisation; see :func:`~instdiffedit.refine.word_maps`), emulated on the device;
            "float" is the unquantised float path (bilinear word maps, nearest final mask).
        attention_downsample: (UNets: SD 1.x/2.x, SDXL) capture cross-attention at latent / this;
            default, the level where the down and up blocks both cross-attend whose maps are
            closest to the paper's 16 x 16 (latent / 4 for SD 1.x at 512 px and SDXL at 1024 px;
            see :func:`~instdiffedit.attention.default_downsample`).
        attention_layers: (joint attention: SD 3.x, FLUX.1) indices of the layers whose maps are
            averaged; default, all (see :func:`~instdiffedit.joint_attention.joint_attention_layers`).
        attention_normaliser: (joint attention) "all_keys", the exact probabilities, whose softmax
            runs over the image and the text keys; "text_keys" renormalises over the text keys.
        reference: the map inverted as the start token's: "clip_bos", "eos", "pad" or "mean" (see
            :mod:`instdiffedit.token_references`); default, the backbone's: CLIP's start token
            (the paper's) where the text has CLIP tokens (SD 1.x/2.x, SDXL, SD 3.x), T5's first
            padding token for FLUX.1.
        words_from: (SD 3.x) a word's map from its CLIP and T5 columns ("all"), or one encoder's.
        mask_size: the side of the grid the word maps are upsampled to and the mask is made on
            (the paper's 64 x 64, SD 1.x's latent size at 512 px); each step's mask is resized
            to the latent size for the blend, the last one goes to the inpainting.
        blend_with: "t" blends with the original re-noised at the current timestep (the
            authors' code); "t-1" at the step's target timestep (the paper's figure).
        mask_guidance: blend with the re-noised original at every step; False is the paper's
            no-mask ablation (the masks are still computed and reported).
        output: "inpaint" repaints the final mask (the paper); "decode" decodes the first
            noise's mask-guided latents instead (the no-inpainting ablation).
        inpaint_steps, inpaint_guidance_scale, scheduler, resolution: see :class:`StagedEditor`.
    """

    capabilities = replace(STAGED, mask_history=True)  # the instant mask of every step; its first stages batch

    @checked_ranges
    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        num_inference_steps: Steps = 50,
        strength: Fraction = 0.5,
        guidance_scale: float = 7.5,
        num_noises: Count = 3,
        th1: UnitInterval = 0.9,
        th2: UnitInterval = 0.6,
        threshold: Threshold = 0.2,
        blur_kernel: Side = 5,
        blur_sigma: float = 0.0,
        blur_passes: NonNegative = 2,
        arithmetic: Arithmetic = "authors",
        attention_downsample: Side | None = None,
        attention_layers: Sequence[int] | None = None,
        attention_normaliser: Normaliser = "all_keys",
        reference: Reference | None = None,
        words_from: Literal["all", "clip", "t5"] = "all",
        mask_size: Side = 64,
        blend_with: Literal["t", "t-1"] = "t",
        mask_guidance: bool = True,
        output: Output = "inpaint",
        inpaint_steps: Steps = 50,
        inpaint_guidance_scale: float | None = None,
        scheduler: str | None = None,
        resolution: Side | None = None,
    ) -> None:
        if blend_with not in ("t", "t-1"):
            raise ValueError(f"blend_with must be 't' or 't-1', got {blend_with!r}.")
        # Every setting is checked before the pipelines are touched (the harness checks a config so);
        # whether the model has the reference and the attention layers, once its backbone exists.
        self.refiner = MaskRefiner(
            th1=th1, th2=th2, threshold=threshold, blur_kernel=blur_kernel, blur_sigma=blur_sigma, blur_passes=blur_passes, arithmetic=arithmetic
        )
        check_text_options(reference, words_from)
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
        self.num_inference_steps = num_inference_steps
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.num_noises = num_noises
        self.attention = AttentionOptions(attention_downsample, None if attention_layers is None else tuple(attention_layers), attention_normaliser)
        self.backbone.check_attention(self.attention)
        self.reference = reference
        self.words_from = words_from
        self.backbone.token_layout("a", reference, words_from)  # a reference the text lacks (FLUX.1: clip_bos) fails now, not at the first edit
        self.mask_size = mask_size
        self.blend_with = blend_with
        self.mask_guidance = mask_guidance

    @torch.no_grad()
    def mask_guided_edit(self, image: PIL.Image.Image, target: str, generator: torch.Generator | None) -> tuple[torch.Tensor, InstantMasks]:
        """The mask-guided denoising loop: the final latents (B x C x h x w) and the mask state.

        Per step: one denoiser call on ``[B uncond | B cond]`` (B rows without classifier-free
        guidance); the conditional rows' text attention updates the instant mask M_t; then
        x_{t-1} = M_t * x' + (1 - M_t) * y_t, with y_t the original re-noised with the same noises.
        """
        latents, (masks,) = self.mask_guided_edits([image], [target], [generator])
        return latents, masks

    @torch.no_grad()
    def mask_guided_edits(
        self,
        images: Sequence[PIL.Image.Image],
        targets: Sequence[str],
        generators: Sequence[torch.Generator | None],
    ) -> tuple[torch.Tensor, list[InstantMasks]]:
        """:meth:`mask_guided_edit` for K items at once: every denoiser call takes all K x B noises.

        Item k owns latent rows ``k*B .. k*B+B-1``; its noises come from its own generator,
        drawn exactly as for it alone, and its mask from its own rows' attention, so each item's
        result is what it gets alone (up to the floating-point effects of a larger batch).
        Returns the K x B latents and one mask state per item.
        """
        if not len(images) == len(targets) == len(generators) >= 1:
            raise ValueError(f"Need as many images, targets and generators, at least one; got {len(images)}, {len(targets)}, {len(generators)}.")
        d = self.backbone
        b = self.num_noises
        z0 = d.encode(images)
        if len(images) > 1:  # one row per noise; a single item's z0 broadcasts and keeps the VAE's memory layout
            z0 = z0.repeat_interleave(b, dim=0)
        timesteps = d.timesteps(self.num_inference_steps, self.strength)
        noise = torch.cat([d.noise((b, *z0.shape[1:]), generator) for generator in generators])
        renoised = d.noised_trajectory(z0, noise, timesteps, at=self.blend_with)
        grid = (self.mask_size, self.mask_size)
        masks = [InstantMasks(self.refiner, d.token_layout(target, self.reference, self.words_from), grid, d.latent_size) for target in targets]

        def guide(step: DenoisingStep) -> torch.Tensor:
            attention = store.take()
            binary = [state.update(attention[k * b : (k + 1) * b]) for k, state in enumerate(masks)]
            if not self.mask_guidance:
                return step.latents
            rows = binary[0] if len(binary) == 1 else torch.stack(binary).repeat_interleave(b, dim=0)[:, None]
            return blend_latents(step.latents, renoised[step.index], rows)

        x = d.add_noise(z0, noise, timesteps[0])
        guidance = d.text_guidance([target for target in targets for _ in range(b)], self.guidance_scale)
        with d.capture_text_attention(self.attention, columns=max(state.layout.extent for state in masks)) as store:
            x = d.denoise(x, timesteps, guidance, after_step=guide)
        return x, masks

    def first_stages(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        masks: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator | None],
    ) -> list[FirstStage]:
        latents, states = self.mask_guided_edits(images, targets, generators)
        b = self.num_noises
        return [
            FirstStage(
                latents=latents[k * b : (k + 1) * b],
                mask=state.binary,
                soft_mask=state.soft,
                mask_history=torch.stack(state.history),
            )
            for k, state in enumerate(states)
        ]

    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        """InstDiffEdit conditions on the target text alone; ``source`` and ``mask`` are unused."""
        return self.first_stages([image], targets=[target], sources=[source], masks=[mask], generators=[generator])[0]
