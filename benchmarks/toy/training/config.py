"""The toy training's configuration: every number that defines a run, saved with the weights as training.json."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from benchmarks.toy.training.masks import DEFAULT_MASK_SHARES


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved with the weights as training.json.

    Step counts, not a time budget, so that a seed gives the same weights on any machine of one
    kind (``--deadline`` is a safety net that shortens the denoisers' schedule, and says so).
    Sizes keep ``python run.py`` (100 edits on two CPU cores) under 5 minutes and the shipped
    fp16 weights of all three pipelines under 45 MB (the repository under 50 MiB).
    """

    seed: int = 0
    batch_size: int = 512  # text encoder, UNet, twin, classifier
    vae_batch_size: int = 128
    dit_batch_size: int = 128  # the first rows of each denoiser batch (its step costs ~4x the UNet's per sample: 333 text tokens)
    text_steps: int = 800
    vae_steps: int = 3000
    classifier_steps: int = 600
    unet_steps: int = 10000
    inpaint_steps: int = 10000
    dit_steps: int = 10000
    classifier_pool: int = 2048  # autoencoded scenes the classifier's crops come from
    text_lr: float = 1e-3
    vae_lr: float = 5e-4
    unet_lr: float = 6e-4  # the UNet (and its twin when trained from scratch)
    twin_lr: float = 3e-4  # the twin fine-tuned from the UNet
    dit_lr: float = 4e-4
    warmup_steps: int = 200
    kl_weight: float = 1e-6
    snr_gamma: float | None = 5.0  # Min-SNR loss weighting of the UNet (Hang et al., 2023); None: plain epsilon MSE
    # The twin's loss: "min_snr", the UNet's weighting, or "epsilon", SD-inpainting's plain epsilon MSE. From the same
    # 7,000-step twin, ~3,200 more steps kept 22.2 dB of the held-out edits' backgrounds with Min-SNR, 20.4 dB without
    # (docs/toy-training-log.md).
    twin_loss: str = "min_snr"
    # Offset noise for the twin (``noised``'s ``offset``; 0.1 is the value Guttenberg's offset-noise post trained with).
    # The toy's latents are 16 x 16, so pure noise's channel means spread by 1/16 = 0.06, about what an image's own
    # channel means add at t = 999 (sqrt(alphas_cumprod) = 0.07 times them). A twin trained without it read the
    # background's colour from those means: from the inpainting pipeline's start, pure noise, it painted the colour the
    # noise's means suggested over the background the masked image showed, on 5 of 64 held-out edits; 7,244 steps
    # with it repainted none (docs/toy-training-log.md). 0.0: none, SD-inpainting's recipe.
    twin_noise_offset: float = 0.1
    splice_share: float = 0.5  # share of each autoencoder batch decoded from spliced latents
    caption_dropout: float = 0.1
    partial_captions: float = 0.5  # share of scenes captioned in part (some objects, background or not)
    ema_decay: float = 0.9995  # with diffusers' EMA warm-up, so early weights fade out quickly
    pool_batches: int = 16  # scenes are drawn, captioned and rendered this many batches at a time
    cuda_graphs: bool = True  # on CUDA, every step of the text encoder, autoencoder and denoisers is one replayed graph
    mask_shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MASK_SHARES))
    # How the inpainting twin starts. "base": SD-inpainting's recipe, the trained UNet's weights with the
    # five extra input channels zero, fine-tuned after the UNet; "scratch": from random weights, beside
    # the UNet (v3's first run: after 6,311 steps its loss equalled the UNet's, so it had not learnt to
    # read the masked image, and it repainted the backgrounds: 12.5 dB outside the region).
    twin_init: str = "base"
    # The text encoder. text_mixing=False: no contextual mixing (every attention output projection zero
    # and frozen: each state a function of its token and position, the padding the same for every caption).
    # text_pooling: what the contrastive stage embeds, CLIP's projected end token ("end") or the mean of the
    # caption's own projected token states ("tokens"; with no mixing the end token knows nothing of the caption).
    # text_joint: after that stage the encoder trains on with the UNet's loss (its EMA with the UNet's).
    text_mixing: bool = False
    text_pooling: str = "tokens"
    text_joint: bool = False
    # What the denoisers learn to generate: draws from the autoencoder's posterior ("sample", SD's recipe) or its
    # mean ("mean"). SD's autoencoder has a narrow posterior, so the two barely differ there; the toy's is wide
    # (std ~0.36 of the scaled latents' ~1.0), so with draws a quarter of every target is noise no input predicts,
    # and the twin's masked-image condition (a draw, as the inpainting pipelines encode it) cannot tell it the
    # draw it is scored on. The methods encode images with the posterior's mean (Backbone.encode).
    denoiser_latents: str = "mean"
    text_hidden: int = 64
    text_layers: int = 4
    text_projection: int = 64
    vae_channels: tuple[int, int, int] = (32, 64, 64)
    unet_channels: tuple[int, int, int] = (32, 64, 192)
    unet_layers_per_block: int = 1
    dit_layers: int = 6
    dit_heads: int = 4
    dit_head_dim: int = 32
    dit_patch_size: int = 1

    def __post_init__(self) -> None:
        if self.twin_init not in TWIN_INITS:
            raise ValueError(f"twin_init must be one of {', '.join(TWIN_INITS)}, got {self.twin_init!r}.")
        if self.twin_loss not in TWIN_LOSSES:
            raise ValueError(f"twin_loss must be one of {', '.join(TWIN_LOSSES)}, got {self.twin_loss!r}.")
        if self.twin_noise_offset < 0:
            raise ValueError(f"twin_noise_offset is a standard deviation, >= 0; got {self.twin_noise_offset}.")
        if self.text_pooling not in TEXT_POOLINGS:
            raise ValueError(f"text_pooling must be one of {', '.join(TEXT_POOLINGS)}, got {self.text_pooling!r}.")
        if self.denoiser_latents not in DENOISER_LATENTS:
            raise ValueError(f"denoiser_latents must be one of {', '.join(DENOISER_LATENTS)}, got {self.denoiser_latents!r}.")
        if self.text_joint and self.text_mixing:
            raise ValueError(
                "text_joint needs text_mixing=False: a mixing encoder trained with the UNet turns its padding into caption slots "
                "(docs/toy-training-log.md); pass --no-text-mixing."
            )


TWIN_INITS = ("base", "scratch")
TWIN_LOSSES = {"min_snr": "the UNet's Min-SNR-weighted loss", "epsilon": "SD-inpainting's plain epsilon MSE"}
"""The twin's losses (``twin_loss``), each with the words its card uses."""
TEXT_POOLINGS = ("end", "tokens")
DENOISER_LATENTS = ("sample", "mean")


def denoiser_targets(posterior: DiagonalGaussianDistribution, config: TrainConfig) -> torch.Tensor:
    """The latents the denoisers learn to generate from an image's posterior (``config.denoiser_latents``)."""
    return (posterior.mean if config.denoiser_latents == "mean" else posterior.sample()).float()


SMOKE_STEPS = {"text_steps": 12, "vae_steps": 12, "unet_steps": 24, "inpaint_steps": 24, "dit_steps": 24}
"""``--smoke``: every graph-captured stage past its capture at the full batch sizes, for timing and plumbing
(the classifier, a few seconds on a GPU, trains in full)."""


def graphed(config: TrainConfig, device: torch.device) -> bool:
    """Whether the steps run as CUDA graphs: on CUDA unless ``cuda_graphs`` is off."""
    return config.cuda_graphs and device.type == "cuda"
