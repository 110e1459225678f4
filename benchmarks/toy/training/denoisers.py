"""The three denoisers the toy world trains on one stream of batches: what each step computes.

* ``unet``: SD 1.x's ``UNet2DConditionModel``, epsilon prediction on SD 1.x's noise schedule
  (Min-SNR-weighted, a training choice that speeds convergence; the model is SD's);
* ``inpaint``: its inpainting twin, trained as SD-inpainting (9 input channels: the noisy
  latents, the mask at the latent grid, the masked image's latents; random masks of
  :mod:`benchmarks.toy.training.masks`), so that ``StableDiffusionInpaintPipeline`` runs it; by default
  fine-tuned from the trained UNet after it (:func:`twin_trainer`), as SD-inpainting from SD;
* ``dit``: a small ``SD3Transformer2DModel``, rectified flow with SD3's logit-normal timesteps,
  conditioned as ``StableDiffusion3Pipeline`` conditions it (:func:`sd3_conditioning`).

All three read the frozen autoencoder's latents and the frozen text encoder's states, drop 10 %
of the captions for classifier-free guidance and keep an EMA of their weights. Every loss draws
its randomness on the device, so the whole step is one CUDA graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import compute_density_for_timestep_sampling
from transformers import CLIPTextModelWithProjection

from benchmarks.models.tiny import SD14_SCHEDULER_CONFIG
from benchmarks.toy.captions import CaptionTokenizer
from benchmarks.toy.training.config import TrainConfig, graphed
from benchmarks.toy.training.masks import MaskSampler
from benchmarks.toy.training.nets import T5_TOKENS, build_dit, build_unet
from benchmarks.toy.training.steps import Trainer, bf16_autocast

DENOISERS = ("unet", "inpaint", "dit")


def drop_captions(rows: torch.Tensor, unconditional: torch.Tensor, share: float) -> torch.Tensor:
    """Each row replaced by the empty caption's with probability ``share`` (classifier-free guidance)."""
    dropped = torch.rand(rows.shape[0], *(1,) * (rows.dim() - 1), device=rows.device) < share
    return torch.where(dropped, unconditional.to(rows.dtype), rows)


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR weights of an epsilon loss, min(SNR, gamma) / SNR at timesteps ``t`` (Hang et al., 2023, as diffusers'
    training scripts compute them with ``compute_snr``, which copies the schedule to the device: a graph cannot hold that)."""
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return snr.clamp(max=gamma) / snr


@torch.no_grad()
def inpainting_condition(vae: AutoencoderKL, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The twin's extra input channels for images in [0, 1] and masks (N, 1, H, W) in {0, 1}, as
    StableDiffusionInpaintPipeline prepares them: the mask at the latent grid (nearest), then the
    latents of the masked image (the image in [-1, 1] where mask < 0.5; the posterior sampled, scaled)."""
    masked = vae.encode((images * 2 - 1) * (masks < 0.5)).latent_dist.sample().float() * vae.config.scaling_factor
    return torch.cat([F.interpolate(masks, size=masked.shape[-2:]), masked], dim=1)


def noised(alphas_cumprod: torch.Tensor, z0: torch.Tensor, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z0 noised to uniformly drawn timesteps of the schedule: (x_t, t, noise).

    ``offset``: offset noise (Guttenberg, 2023; diffusers' training scripts' ``noise_offset``), a
    per-sample, per-channel constant of that standard deviation added to the noise, so that the
    noisiest ``x_t``'s channel means stop telling the image's colour (see ``TrainConfig.twin_noise_offset``).
    """
    t = torch.randint(0, len(alphas_cumprod), (z0.shape[0],), device=z0.device)
    noise = torch.randn_like(z0)
    if offset:
        noise = noise + offset * torch.randn(*z0.shape[:2], 1, 1, device=z0.device, dtype=z0.dtype)
    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * noise, t, noise


def epsilon_loss(alphas_cumprod: torch.Tensor, prediction: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, snr_gamma: float | None) -> torch.Tensor:
    """The epsilon MSE per sample, Min-SNR-weighted when ``snr_gamma`` is given, averaged."""
    error = (prediction.float() - noise).pow(2).mean(dim=(1, 2, 3))
    return error.mean() if snr_gamma is None else (error * min_snr_weights(alphas_cumprod, t, snr_gamma)).mean()


def sd3_conditioning(penultimate: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What StableDiffusion3Pipeline.encode_prompt makes of one CLIP encoder in both CLIP slots and no T5:
    the two penultimate states side by side, then ``T5_TOKENS`` zero vectors; the two pooled projections side by side."""
    clip = torch.cat([penultimate, penultimate], dim=-1)
    t5 = torch.zeros(clip.shape[0], T5_TOKENS, clip.shape[-1], device=clip.device, dtype=clip.dtype)
    return torch.cat([clip, t5], dim=-2), torch.cat([pooled, pooled], dim=-1)


def denoiser_trainers(
    config: TrainConfig,
    vae: AutoencoderKL,
    text: Callable[[torch.Tensor], dict],
    tokens: CaptionTokenizer,
    device: torch.device,
    text_encoder: CLIPTextModelWithProjection | None = None,
) -> list[Trainer]:
    """The UNet, the inpainting twin and the DiT, on the frozen autoencoder's latents and the text encoder's states:
    frozen, or with ``config.text_joint`` trained with the UNet (``text_encoder``'s weights are then the UNet
    trainer's too, EMA included; the DiT reads its current states)."""
    alphas = DDPMScheduler.from_config(SD14_SCHEDULER_CONFIG).alphas_cumprod.to(device)  # SD 1.x betas
    scale, shift = vae.config.scaling_factor, vae.config.shift_factor
    empty_ids = tokens([""]).to(device)
    empty = text(empty_ids)
    empty_embeds, empty_pooled = sd3_conditioning(empty["penultimate"], empty["pooled"])
    if config.text_joint and text_encoder is None:
        raise ValueError("text_joint trains the text encoder with the UNet: pass text_encoder.")
    joint_params = joint_text_parameters(text_encoder) if config.text_joint else []

    unet = build_unet(config.unet_channels, config.unet_layers_per_block, config.text_hidden).to(device).train()

    def unet_loss(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x, t, noise = noised(alphas, inputs["latents"] * scale)
        with bf16_autocast(device):
            if config.text_joint:
                context = text_encoder(drop_captions(inputs["ids"], empty_ids, config.caption_dropout)).last_hidden_state
            else:
                context = drop_captions(inputs["context"], empty["context"], config.caption_dropout)
            prediction = unet(x, t, encoder_hidden_states=context).sample
        return epsilon_loss(alphas, prediction, noise, t, config.snr_gamma)

    dit = (
        build_dit(config.dit_layers, config.dit_heads, config.dit_head_dim, config.text_hidden, config.text_projection, config.dit_patch_size)
        .to(device)
        .train()
    )

    def dit_loss(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # SD3's rectified flow: x_s = (1 - s) z0 + s noise, target noise - z0, s logit-normal, timestep 1000 s.
        z0 = (inputs["latents"] - shift) * scale
        sigma = compute_density_for_timestep_sampling("logit_normal", z0.shape[0], logit_mean=0.0, logit_std=1.0, device=device)
        noise = torch.randn_like(z0)
        s = sigma.view(-1, 1, 1, 1)
        embeds, pooled = sd3_conditioning(inputs["penultimate"], inputs["pooled"])
        dropped = torch.rand(z0.shape[0], device=device) < config.caption_dropout
        embeds = torch.where(dropped[:, None, None], empty_embeds.to(embeds.dtype), embeds)
        pooled = torch.where(dropped[:, None], empty_pooled.to(pooled.dtype), pooled)
        with bf16_autocast(device):
            prediction = dit(hidden_states=(1 - s) * z0 + s * noise, timestep=sigma * 1000, encoder_hidden_states=embeds, pooled_projections=pooled).sample
        return F.mse_loss(prediction.float(), noise - z0)

    common = {"warmup": config.warmup_steps, "graphed": graphed(config, device), "ema_decay": config.ema_decay}
    trainers = [
        Trainer("unet", unet, unet_loss, lr=config.unet_lr, total=config.unet_steps, extra_params=tuple(joint_params), **common),
        Trainer("dit", dit, dit_loss, lr=config.dit_lr, total=config.dit_steps, **common),
    ]
    if config.twin_init == "scratch":
        trainers.insert(1, twin_trainer(config, vae, text, tokens, device))
    return trainers


def joint_text_parameters(text_encoder: CLIPTextModelWithProjection) -> list[torch.nn.Parameter]:
    """The text encoder's parameters that the UNet's loss trains (``text_joint``), set trainable: all of its
    ``text_model`` but the attention output projections, which stay zero (no mixing). Its projection is left
    out: the UNet reads the states, and SD3's pooled vector of an encoder without mixing is constant anyway."""
    params = [p for name, p in text_encoder.text_model.named_parameters() if ".self_attn.out_proj." not in name]
    for param in params:
        param.requires_grad_(True)
    return params


def twin_from(base: UNet2DConditionModel, config: TrainConfig) -> UNet2DConditionModel:
    """The inpainting twin as SD-inpainting was made from SD: the base UNet's weights, its input
    convolution widened to the mask and masked-image channels with zero weights (so it starts as the base).
    A ``base`` that is already a twin (9 input channels) is copied as it is, to train it further."""
    twin = build_unet(config.unet_channels, config.unet_layers_per_block, config.text_hidden, in_channels=9).to(base.device)
    weights = dict(base.state_dict())
    conv_in = weights["conv_in.weight"]
    weights["conv_in.weight"] = torch.cat([conv_in, conv_in.new_zeros(conv_in.shape[0], 9 - conv_in.shape[1], *conv_in.shape[2:])], dim=1)
    twin.load_state_dict(weights)
    return twin


def twin_trainer(
    config: TrainConfig,
    vae: AutoencoderKL,
    text: Callable[[torch.Tensor], dict],
    tokens: CaptionTokenizer,
    device: torch.device,
    base: UNet2DConditionModel | None = None,
) -> Trainer:
    """The 9-channel inpainting twin (noisy latents, mask, masked image's latents), trained as SD-inpainting is:
    random masks (:mod:`benchmarks.toy.training.masks`), the epsilon loss (``config.twin_loss``), offset noise
    (``config.twin_noise_offset``); fine-tuned from ``base``
    when given (:func:`twin_from`, at ``twin_lr``), else from random weights (at ``unet_lr``)."""
    alphas = DDPMScheduler.from_config(SD14_SCHEDULER_CONFIG).alphas_cumprod.to(device)
    snr_gamma = config.snr_gamma if config.twin_loss == "min_snr" else None
    empty = text(tokens([""]).to(device))
    twin = (
        (
            twin_from(base, config)
            if base is not None
            else build_unet(config.unet_channels, config.unet_layers_per_block, config.text_hidden, in_channels=9).to(device)
        )
        .train()
        .requires_grad_(True)
    )
    masks = MaskSampler(config.mask_shares, device)

    def inpaint_loss(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x, t, noise = noised(alphas, inputs["latents"] * vae.config.scaling_factor, config.twin_noise_offset)
        with bf16_autocast(device):
            condition = inpainting_condition(vae, inputs["images"], masks(inputs["objects"]))
        context = drop_captions(inputs["context"], empty["context"], config.caption_dropout)
        with bf16_autocast(device):
            prediction = twin(torch.cat([x, condition], dim=1), t, encoder_hidden_states=context).sample
        return epsilon_loss(alphas, prediction, noise, t, snr_gamma)

    lr = config.twin_lr if base is not None else config.unet_lr
    return Trainer(
        "inpaint",
        twin,
        inpaint_loss,
        lr=lr,
        total=config.inpaint_steps,
        warmup=config.warmup_steps,
        graphed=graphed(config, device),
        ema_decay=config.ema_decay,
    )


def denoiser_inputs(config: TrainConfig) -> dict[str, Callable[[dict], dict]]:
    """What each denoiser's step reads from a prepared batch (the DiT: its first ``dit_batch_size`` rows)."""
    rows = slice(0, config.dit_batch_size)
    return {
        "unet": (lambda b: {"latents": b["latents"], "ids": b["ids"]}) if config.text_joint else (lambda b: {"latents": b["latents"], "context": b["context"]}),
        "inpaint": lambda b: {"latents": b["latents"], "context": b["context"], "images": b["images"], "objects": b["objects"]},
        "dit": lambda b: {"latents": b["latents"][rows], "penultimate": b["penultimate"][rows], "pooled": b["pooled"][rows]},
    }
