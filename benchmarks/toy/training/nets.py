"""The toy world's networks: the diffusers/transformers models it trains (its object classifier,
which the harness also runs, is :mod:`benchmarks.toy.classifier`).

Sizes are arguments (the training configuration holds them), so the tests build the same
architectures at a tenth of the width.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

IMAGE_SIZE = 64
VAE_DOWNSAMPLING = 4
LATENT_SIZE = IMAGE_SIZE // VAE_DOWNSAMPLING
LATENT_CHANNELS = 4
T5_TOKENS = 256
"""Text tokens StableDiffusion3Pipeline adds for its third text encoder: without one (``text_encoder_3=None``),
its default ``max_sequence_length`` of 256 zero vectors. The toy DiT is trained with them, so the pipeline's
default call conditions it as in training."""


def build_vae(channels: tuple[int, ...], mid_block_attention: bool = False) -> AutoencoderKL:
    """64 px -> 16 x 16 x 4 latents (three levels: the autoencoder downsamples by 4).

    No mid-block attention by default: that global attention at 16 x 16 let the decoder spread
    a masked region's latents over the whole image (``docs/toy-training-log.md``); without it the
    only image-wide path left is GroupNorm's statistics, which the splice loss of the training
    (:func:`benchmarks.toy.training.train.train_vae`) teaches the decoder to be robust to.
    """
    if len(channels) != 3:
        raise ValueError(f"The toy autoencoder has three levels (64 -> 16 px); got channels {channels}.")
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=min(32, min(channels)),
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=mid_block_attention,
    )


def build_text_encoder(hidden: int, layers: int, projection: int, mixing: bool = True) -> CLIPTextModelWithProjection:
    """A small causal CLIP text encoder over the full 49,408-token CLIP vocabulary, with CLIP's text
    projection (the pooled embedding the contrastive loss and SD3's ``pooled_projections`` use).

    SD 1.x pipelines load its ``text_model`` as a ``CLIPTextModel``; SD3 pipelines load the whole.

    ``mixing=False``: every layer's attention output projection is zero and frozen
    (:func:`without_mixing`), so each state is a function of its token and position alone.
    """
    encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=projection,
        )
    )
    return encoder if mixing else without_mixing(encoder)


def without_mixing(encoder: CLIPTextModelWithProjection) -> CLIPTextModelWithProjection:
    """The encoder with no contextual mixing: every self-attention's output projection (weight and
    bias) zero and frozen, so a layer adds nothing from the other positions and each state is a
    function of its token and position alone.

    Why: in a causal encoder every padding position after the end token attends to the whole
    caption, and SD 1.x pads 77 tokens with the end token, so a denoiser can read some 70 copies
    of the caption's summary and never the words (the v3 toy UNet sent 97 % of a pixel's
    cross-attention there). Without mixing the padding is the same for every caption and the
    caption reaches the denoiser through its word tokens only; the weights stay a standard
    ``CLIPTextModel`` that every pipeline loads.
    """
    for layer in encoder.text_model.encoder.layers:
        projection = layer.self_attn.out_proj
        nn.init.zeros_(projection.weight)
        nn.init.zeros_(projection.bias)
        projection.requires_grad_(False)
    return encoder


def build_unet(channels: tuple[int, int, int], layers_per_block: int, cross_attention_dim: int, in_channels: int = LATENT_CHANNELS) -> UNet2DConditionModel:
    """Cross-attention at 16 x 16 and 8 x 8 in the down and up blocks (and the 4 x 4 mid block).

    ``in_channels=9`` is the inpainting twin: noisy latents, the mask, the masked image's latents (SD-inpainting's input).
    """
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=in_channels,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=(2, 4, 4),
        norm_num_groups=min(32, min(channels)),
    )


def build_dit(layers: int, heads: int, head_dim: int, text_hidden: int, text_projection: int, patch_size: int = 1) -> SD3Transformer2DModel:
    """A small MMDiT (SD3's architecture) on the 16 x 16 x 4 latents.

    Patch size 1 gives a 16 x 16 token grid, the resolution of the UNet's maps that InstDiffEdit
    reads (SD3 at 1024 px has 64 x 64 tokens; patch 2 here would leave 8 x 8). The text side is
    SD3's: two CLIP encoders' penultimate states side by side (2 x ``text_hidden`` = the joint
    attention width, so nothing is padded) followed by the T5 slots, and the two pooled
    projections concatenated. QK RMS-norm as in SD 3.5.
    """
    return SD3Transformer2DModel(
        sample_size=LATENT_SIZE,
        patch_size=patch_size,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=layers,
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=2 * text_hidden,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=2 * text_projection,
        pos_embed_max_size=LATENT_SIZE // patch_size,
        qk_norm="rms_norm",
    )


class SceneEncoder(nn.Module):
    """The image tower of the text encoder's contrastive training: a small CNN, 64 px scene -> embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(8, o), nn.SiLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128), nn.Flatten())
        self.project = nn.Linear(128 * (IMAGE_SIZE // 16) ** 2, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(images * 2 - 1))
