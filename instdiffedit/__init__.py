"""InstDiffEdit: diffusion-based image editing with instant attention masks (Zou et al., AAAI 2024).

Plain Python over diffusers pipelines: no Hydra, no W&B, no knowledge of files or splits.
"""

from instdiffedit.attention import (
    capture_cross_attention,
    cross_attention_layers,
    default_downsample,
)
from instdiffedit.diffusion import LatentDiffusion, blend_latents
from instdiffedit.editor import InstantMasks, InstDiffEdit
from instdiffedit.inpaint import InpaintingModelInpainter, LatentBlendInpainter
from instdiffedit.refine import (
    MaskRefiner,
    aggregate,
    minmax,
    word_maps,
    word_positions,
)
from instdiffedit.tokens import TokenLayout, token_layout
from instdiffedit.types import Editor, EditResult

__all__ = [
    "EditResult",
    "Editor",
    "InpaintingModelInpainter",
    "InstDiffEdit",
    "InstantMasks",
    "LatentBlendInpainter",
    "LatentDiffusion",
    "MaskRefiner",
    "TokenLayout",
    "aggregate",
    "blend_latents",
    "capture_cross_attention",
    "cross_attention_layers",
    "default_downsample",
    "minmax",
    "token_layout",
    "word_maps",
    "word_positions",
]
