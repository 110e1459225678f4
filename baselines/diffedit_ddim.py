"""DiffEdit as in its paper (Couairon et al., ICLR 2023, arXiv 2210.11427), through diffusers.

Three steps, each one call of diffusers' ``StableDiffusionDiffEditPipeline``:

1. Mask: noise the image to ``mask_encode_strength`` with n noises, predict the noise once per
   noise conditioned on the reference text R and once on the query Q (CFG each), average
   |eps_Q - eps_R| over channels and noises, clip at ``mask_thresholding_ratio`` x its mean,
   rescale to [0, 1] and binarise at 0.5.
2. Encoding: DDIM-encode the image up to the encoding ratio r, keeping every intermediate latent.
3. Decoding with mask guidance: DDIM-decode from r with Q; after each step, outside the mask the
   latents are replaced by the encoded latents of that timestep (the clean latents at the end).

Unlike :class:`baselines.DiffEdit` (the InstDiffEdit authors' variant: multi-step mask, then
SD-inpainting), nothing is inpainted and the mask comes from a single UNet call.
"""

from __future__ import annotations

from typing import Any, Literal

import PIL.Image
import torch
from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    StableDiffusionDiffEditPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)

from baselines.pipeline_editor import PIPELINE_BACKED, MaskedImage, PipelineEditor
from instdiffedit.accounting import PhaseTimer
from instdiffedit.ranges import Count, Fraction, Side, Steps, checked_ranges
from instdiffedit.registry import register_method


@register_method("diffedit_ddim", role="baseline", rank=2, quick=("method.num_inference_steps=10", "method.num_maps_per_mask=2"))
class DiffEditDDIM(PipelineEditor):
    """Edit an image with the original DiffEdit: noise-difference mask, DDIM encode, masked decode.

    ``edit(image, target=..., source=...)``: ``target`` is the query Q, ``source`` the reference
    R. Without a ``source`` the reference is "" -- the unconditional model, as the paper does
    when no reference text is given. ``prompt`` and ``mask`` (a ground-truth mask, for oracle
    methods) are ignored.

    ``EditResult.mask`` is the pipeline's binary mask resized (nearest) to the input; its
    ``soft_mask`` is None: diffusers computes the pre-threshold map inside ``generate_mask``
    without returning it, and we do not recompute it.

    Args (defaults are the paper's as diffusers implements it, unless noted):
        pipe: the base pipeline; its VAE, text encoder, tokenizer and UNet are shared, not copied.
        inpaint_pipe: accepted so every method is built alike; unused.
        num_inference_steps: the DDIM schedule (50) for the mask, the encoding and the decoding.
        guidance_scale: classifier-free guidance (7.5) of the mask's two predictions, of the
            decoding and, with ``encode_text="source"``, of the encoding.
        encode_ratio: r, how far the image is DDIM-encoded and then decoded (0.5: our choice,
            the middle of the range the paper explores; diffusers' default is 0.8).
        num_maps_per_mask: n, noises averaged into the mask (10).
        mask_encode_strength: noise level of the mask's predictions (0.5).
        mask_thresholding_ratio: the difference map is clipped at this multiple of its mean
            before rescaling and binarising at 0.5 (3.0; the paper "removes extreme values").
        encode_text: "unconditional" (default) encodes with the empty text and no guidance,
            as we read the paper's step 2 (one UNet row per step); "source" encodes
            conditioned on R with CFG, as diffusers' DiffEdit guide does.
        decode_negative: the text CFG pushes away from while decoding: "unconditional" ("",
            plain CFG, default) or "source" (R, as diffusers' DiffEdit guide does).
        resolution: working resolution in pixels (square); default, the UNet's native size.

    UNet image-evaluations per edit (g = 2 with CFG, else 1; k = int(num_inference_steps * r)):
    ``2 g n`` (mask: one call, n rows for each of [R-negative, R, Q-negative, Q] with CFG)
    ``+ k g_enc`` (encoding; g_enc = 1 for "unconditional") ``+ k g`` (decoding).
    With the defaults: 40 + 25 + 50 = 115.
    """

    capabilities = PIPELINE_BACKED  # diffusers' StableDiffusionDiffEditPipeline is written for SD 1.x/2.x
    pipeline_class = StableDiffusionDiffEditPipeline

    @checked_ranges
    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        inpaint_pipe: StableDiffusionInpaintPipeline | None = None,
        *,
        num_inference_steps: Steps = 50,
        guidance_scale: float = 7.5,
        encode_ratio: Fraction = 0.5,
        num_maps_per_mask: Count = 10,
        mask_encode_strength: Fraction = 0.5,
        mask_thresholding_ratio: float = 3.0,
        encode_text: Literal["unconditional", "source"] = "unconditional",
        decode_negative: Literal["unconditional", "source"] = "unconditional",
        resolution: Side | None = None,
    ) -> None:
        if encode_text not in ("source", "unconditional"):
            raise ValueError(f"encode_text must be 'source' or 'unconditional', got {encode_text!r}.")
        if decode_negative not in ("unconditional", "source"):
            raise ValueError(f"decode_negative must be 'unconditional' or 'source', got {decode_negative!r}.")
        super().__init__(pipe, resolution)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.encode_ratio = encode_ratio
        self.num_maps_per_mask = num_maps_per_mask
        self.mask_encode_strength = mask_encode_strength
        self.mask_thresholding_ratio = mask_thresholding_ratio
        self.encode_text = encode_text
        self.decode_negative = decode_negative

    def schedulers(self, config: dict[str, Any]) -> dict[str, Any]:
        # clip_sample=False: DDIM's default clips the predicted x0 to [-1, 1], wrong for SD
        # latents; SD's own scheduler configs set it to False, the tiny model's omits it.
        return {
            "scheduler": DDIMScheduler.from_config(config, clip_sample=False),
            "inverse_scheduler": DDIMInverseScheduler.from_config(config, clip_sample=False),
        }

    def pipeline_edit(
        self, work_image: PIL.Image.Image, *, target: str, source: str | None, generator: torch.Generator | None, timer: PhaseTimer
    ) -> MaskedImage:
        """Mask where ``target`` and ``source`` disagree, then re-generate only there with ``target``."""
        reference = source or ""
        p = self.pipeline
        with timer.phase("mask"):
            latent_mask = p.generate_mask(
                image=work_image,
                source_prompt=reference,
                target_prompt=target,
                num_maps_per_mask=self.num_maps_per_mask,
                mask_encode_strength=self.mask_encode_strength,
                mask_thresholding_ratio=self.mask_thresholding_ratio,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                generator=generator,
                output_type="np",
            )  # 1 x h x w, 0/1 integers, at latent size
        with timer.phase("edit"):
            unconditional = self.encode_text == "unconditional"
            encoded = p.invert(
                prompt="" if unconditional else reference,
                image=work_image,
                num_inference_steps=self.num_inference_steps,
                inpaint_strength=self.encode_ratio,
                guidance_scale=1.0 if unconditional else self.guidance_scale,
                generator=generator,
            ).latents
            edited = p(
                prompt=target,
                mask_image=latent_mask,
                image_latents=encoded,
                inpaint_strength=self.encode_ratio,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                negative_prompt=reference if self.decode_negative == "source" else None,
                generator=generator,
            ).images[0]
        return edited, torch.from_numpy(latent_mask[0]).float(), None
