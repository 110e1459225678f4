"""Stable Diffusion 1.4's architecture with random weights: what the speed benchmark times.

A UNet's cost depends on its shapes, not its weights, so random weights time the same as the
real ones and need no download. Configs are those of ``CompVis/stable-diffusion-v1-4`` (base
UNet, VAE, CLIP ViT-L/14 text encoder) and of the SD-inpainting model (the same UNet with 9
input channels); the tokenizer is the real CLIP one, so prompts have their real token counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from benchmarks.devices import resolve_device, resolve_dtype
from benchmarks.models.loading import Pipelines, check_speed_options, optimize
from benchmarks.models.tiny import SD14_SCHEDULER_CONFIG, clip_tokenizer
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath

SD14_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD14_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
CLIP_VIT_L14_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=768,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)


@contextmanager
def random_weights(device: torch.device, dtype: torch.dtype, seed: int) -> Iterator[None]:
    """Modules made in the block are made on ``device`` in ``dtype``, from a fixed seed (the
    caller's random state is left as it was)."""
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


def frozen(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Inference only, every floating tensor in ``dtype``, as ``from_pretrained(torch_dtype=...)``
    loads them (SD 3.x's position embedding is made in float32 whatever the default)."""
    if any(t.is_floating_point() and t.dtype != dtype for t in module.state_dict().values()):
        module.to(dtype)
    return module.eval().requires_grad_(False)


def build_sd14_pipelines(device: str | torch.device, dtype: torch.dtype = torch.float16, seed: int = 0) -> Pipelines:
    """Base and inpainting pipelines of SD 1.4's architecture, random weights, built on ``device``.

    Modules are created directly on the device (random initialisation of ~2 billion
    parameters on the host would take longer than the benchmark). They share the VAE, text
    encoder and tokenizer, as the real models' would be equal anyway for timing.
    """
    device = torch.device(device)
    with random_weights(device, dtype, seed):
        unet = frozen(UNet2DConditionModel(**SD14_UNET), dtype)
        inpaint_unet = frozen(UNet2DConditionModel(**{**SD14_UNET, "in_channels": 9}), dtype)
        vae = frozen(AutoencoderKL(**SD14_VAE), dtype)
        text_encoder = frozen(CLIPTextModel(CLIPTextConfig(**CLIP_VIT_L14_TEXT)), dtype)
    shared = dict(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    base = StableDiffusionPipeline(unet=unet, scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG), **shared)
    inpaint = StableDiffusionInpaintPipeline(unet=inpaint_unet, scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG), **shared)
    for pipe in (base, inpaint):
        pipe.set_progress_bar_config(disable=True)
    return Pipelines(base=base, inpaint=inpaint)


def sd14_random_pipelines(
    *,
    family: Literal["sd"] = "sd",
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    inpaint: bool = True,
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> Pipelines:
    """SD 1.4's architecture with random weights as a run's model (``conf/model/sd14_random.yaml``).

    The weights depend only on ``seed`` (and the device's random generator), so every shard of a
    sharded run builds the same model and the merged rows equal an unsharded run's. ``dtype``:
    as :func:`benchmarks.devices.resolve_dtype` (``auto``: float16 on CUDA, float32 on a CPU).
    ``family`` is SD 1.x/2.x's, the only one this architecture has (the run config names it).
    ``inpaint``: keep the inpainting twin; without it the final step blends latents with the base
    model. The twin is built either way, so the base model's weights do not depend on it.
    """
    check_speed_options(fast_path)
    torch_device = resolve_device(device)
    pipes = build_sd14_pipelines(torch_device, resolve_dtype(dtype, torch_device), seed=seed)
    if not inpaint:
        pipes = Pipelines(base=pipes.base, inpaint=None)
    return optimize(pipes, fast_path=fast_path, channels_last=channels_last)
