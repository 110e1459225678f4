"""Stable Diffusion 3.x (MMDiT): CLIP-L/G + T5 text tokens attend jointly with the image tokens.

The text sequence is 77 CLIP columns (CLIP-L's and CLIP-G's hidden states side by side,
zero-padded to T5's width) then ``max_sequence_length`` T5 columns; the transformer also takes
the pooled CLIP embeddings. Classifier-free guidance with the empty text, flow matching with the
model's shifted sigmas. The start-token reference is CLIP's start token, column 0 (the paper's
token). SD 3.x has no inpainting twin: the base model inpaints by latent blending.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers import DiffusionPipeline, StableDiffusion3Pipeline

from instdiffedit.backbones.base import Family, register_backbone
from instdiffedit.backbones.joint import JointAttentionBackbone
from instdiffedit.fast_paths import Forward
from instdiffedit.token_references import (
    SD3_REFERENCE,
    SD3_T5_LENGTH,
    Reference,
    TextPart,
    sd3_parts,
)


def sd3_forward(transformer: torch.nn.Module, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    return transformer.forward(
        hidden_states=sample,
        timestep=timestep.expand(sample.shape[0]),
        encoder_hidden_states=context,
        pooled_projections=pooled,
        return_dict=False,
    )[0]


@register_backbone(StableDiffusion3Pipeline, name="SD 3.x")
class StableDiffusion3(JointAttentionBackbone):
    """SD 3.x over a ``StableDiffusion3Pipeline``; ``max_sequence_length``: T5 tokens (the pipeline's 256)."""

    family: ClassVar[Family] = "sd3"
    default_reference: ClassVar[Reference] = SD3_REFERENCE
    forward: ClassVar[Forward] = staticmethod(sd3_forward)

    def __init__(
        self, pipe: DiffusionPipeline, *, scheduler: str | None = None, resolution: int | None = None, max_sequence_length: int = SD3_T5_LENGTH
    ) -> None:
        self.max_sequence_length = max_sequence_length
        super().__init__(pipe, scheduler=scheduler, resolution=resolution)

    def _encode_text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt,
            None,
            None,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return embeds, pooled

    def text_parts(self) -> tuple[TextPart, ...]:
        return sd3_parts(self.pipe.tokenizer, self.pipe.tokenizer_3, self.max_sequence_length)
