"""InstDiffEdit: diffusion-based image editing with instant attention masks (Zou et al., AAAI 2024).

Plain Python over diffusers pipelines of SD 1.x/2.x, SDXL, SD 3.x and FLUX.1 (one backbone per
family, :mod:`instdiffedit.backbones`): no Hydra, no W&B, no knowledge of files or splits.
"""

from instdiffedit.attention import (
    capture_cross_attention,
    cross_attention_layers,
    default_downsample,
)
from instdiffedit.backbones import Backbone, backbone_for, blend_latents
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
from instdiffedit.types import BatchEditor, Capabilities, Editor, EditResult

__all__ = [
    "Backbone",
    "BatchEditor",
    "Capabilities",
    "EditResult",
    "Editor",
    "InpaintingModelInpainter",
    "InstDiffEdit",
    "InstantMasks",
    "LatentBlendInpainter",
    "MaskRefiner",
    "TokenLayout",
    "aggregate",
    "backbone_for",
    "blend_latents",
    "capture_cross_attention",
    "cross_attention_layers",
    "default_downsample",
    "minmax",
    "token_layout",
    "word_maps",
    "word_positions",
]
