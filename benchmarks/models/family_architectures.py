"""SDXL, SD 3.5 Medium, FLUX.1 [dev], FLUX.1 Kontext [dev] and Qwen-Image-Edit at full size with random weights: what the speed benchmark times.

A denoiser's cost depends on its shapes, not its weights, so random weights time as the real
ones do and need no download (the models are gated, and tens of gigabytes). Every size below is
the ``config.json`` value of the hub repository named beside it; the pipelines are the
families' own diffusers pipelines with the real schedulers' configs (those of
:mod:`benchmarks.models.tiny_families`), so the backbones treat them exactly as loaded models.

Nothing is shrunk, the text encoders included (T5-XXL's 4.8 billion parameters among them):
they encode each prompt once per edit, so they cost an edit only that, and they are timed with
it. What differs from the real models costs nothing: the tokenizers are the real CLIP BPE and,
for T5, a small SentencePiece model trained offline (:func:`benchmarks.models.t5_tokenizer.t5_tokenizer`),
whose ids all exist in T5's 32,128-row embedding; the pipelines pad every prompt to the same
77 CLIP and 256 (SD 3.x) or 512 (FLUX.1 [dev] and Kontext) T5 tokens as the real ones do. Qwen-Image-Edit's
tokenizer is a small Qwen2-style BPE (:mod:`benchmarks.models.qwen_processor`) that splits the
pipeline's system prompt into the same 64 tokens as Qwen's; the instruction may take a few more
or fewer tokens than with Qwen's, against the ~1,400 image tokens the encoder reads with it.

Modules are made directly on the device, in their final dtype (random initialisation of FLUX.1's
twelve billion parameters on the host would take minutes; made in float32 and cast, two
transformers of that size would need twice their memory at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLQwenImage,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxFillPipeline,
    FluxKontextPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    QwenImageEditPipeline,
    QwenImageTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    T5Config,
    T5EncoderModel,
)

from benchmarks.models.families import FamilyPipelines, finish_pipeline
from benchmarks.models.qwen_processor import qwen_processor, qwen_tokenizer, vision_token_ids
from benchmarks.models.sd_architecture import CLIP_VIT_L14_TEXT, frozen, random_weights
from benchmarks.models.t5_tokenizer import t5_tokenizer
from benchmarks.models.tiny import clip_tokenizer
from benchmarks.models.tiny_families import (
    FLUX_DEV_SCHEDULER_CONFIG,
    QWEN_IMAGE_SCHEDULER_CONFIG,
    SD35_SCHEDULER_CONFIG,
    SDXL_SCHEDULER_CONFIG,
    clip_g_tokenizer,
)

RESOLUTION = 1024
"""The native image side of all five, in pixels."""

# -- the configs ------------------------------------------------------------------------------

SDXL_UNET = {  # stabilityai/stable-diffusion-xl-base-1.0, unet/ (2.6 B parameters)
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}
SDXL_INPAINT_UNET = {**SDXL_UNET, "in_channels": 9}  # diffusers/stable-diffusion-xl-1.0-inpainting-0.1, unet/
SDXL_VAE = {  # stabilityai/stable-diffusion-xl-base-1.0, vae/ (float32 under float16: it overflows)
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
CLIP_BIG_G_TEXT = {  # OpenCLIP ViT-bigG/14's text tower: text_encoder_2/ of SDXL and SD 3.x
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
T5_XXL_ENCODER = {  # google/t5-v1_1-xxl's encoder: text_encoder_3/ of SD 3.x, text_encoder_2/ of FLUX.1
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
SD35_MEDIUM_TRANSFORMER = {  # stabilityai/stable-diffusion-3.5-medium, transformer/ (MMDiT-X, 2.5 B)
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 384,
    "dual_attention_layers": tuple(range(13)),  # the first 13 blocks add an image-only self-attention
    "qk_norm": "rms_norm",
}
FLOW_VAE = {  # the 16-channel VAE of SD 3.x and FLUX.1 (vae/), without its scaling and shift
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}
SD3_VAE = {**FLOW_VAE, "scaling_factor": 1.5305, "shift_factor": 0.0609}  # stabilityai/stable-diffusion-3.5-medium, vae/
FLUX_VAE = {**FLOW_VAE, "scaling_factor": 0.3611, "shift_factor": 0.1159}  # black-forest-labs/FLUX.1-dev, vae/
FLUX_DEV_TRANSFORMER = {  # black-forest-labs/FLUX.1-dev, transformer/ (12 B)
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": (16, 56, 56),
}
# black-forest-labs/FLUX.1-Fill-dev, transformer/: packed latents, packed masked-image latents and the
# 8 x 8-pixel mask folded into each of a token's 2 x 2 latents: 64 + 64 + 256 input channels.
FLUX_FILL_TRANSFORMER = {**FLUX_DEV_TRANSFORMER, "in_channels": 384, "out_channels": 64}

# black-forest-labs/FLUX.1-Kontext-dev, transformer/: FLUX.1 [dev]'s architecture (12 B); the input image's
# tokens join the sequence, so no input channel is added.
KONTEXT_DEV_TRANSFORMER = FLUX_DEV_TRANSFORMER
QWEN_IMAGE_TRANSFORMER = {  # Qwen/Qwen-Image-Edit, transformer/ (Qwen-Image's MMDiT, 20 B)
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 60,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 3584,
    "guidance_embeds": False,
    "axes_dims_rope": (16, 56, 56),
}
QWEN_IMAGE_VAE = {  # Qwen/Qwen-Image-Edit, vae/ (a causal 3-D VAE, downsampling by 8)
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
}
QWEN25_VL_7B_TEXT = {  # Qwen/Qwen-Image-Edit, text_encoder/ (Qwen2.5-VL-7B-Instruct): the language model
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_7B_VISION = {  # ... and its vision tower
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
QWEN25_VL_IMAGE_PROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056}  # Qwen/Qwen-Image-Edit, processor/preprocessor_config.json


# -- building -------------------------------------------------------------------------------


def build_sdxl(device: torch.device, dtype: torch.dtype = torch.float16, seed: int = 0) -> FamilyPipelines:
    """SDXL 1.0 base and the SDXL inpainting model (sharing the VAE, the text encoders and tokenizers)."""
    with random_weights(device, dtype, seed):
        unet = frozen(UNet2DConditionModel(**SDXL_UNET), dtype)
        inpaint_unet = frozen(UNet2DConditionModel(**SDXL_INPAINT_UNET), dtype)
        text_encoder = frozen(CLIPTextModel(CLIPTextConfig(**CLIP_VIT_L14_TEXT)), dtype)
        text_encoder_2 = frozen(CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIG_G_TEXT)), dtype)
        vae = frozen(AutoencoderKL(**SDXL_VAE), dtype)
    shared = {"vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "tokenizer": clip_tokenizer(), "tokenizer_2": clip_g_tokenizer()}
    base = StableDiffusionXLPipeline(unet=unet, scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG), **shared)
    inpaint = StableDiffusionXLInpaintPipeline(
        unet=inpaint_unet, scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG), requires_aesthetics_score=False, **shared
    )
    return _pipelines("sdxl", dtype, base, inpaint)


def build_sd35_medium(device: torch.device, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> FamilyPipelines:
    """SD 3.5 Medium (no inpainting twin: the base model inpaints by latent blending)."""
    with random_weights(device, dtype, seed):
        transformer = frozen(SD3Transformer2DModel(**SD35_MEDIUM_TRANSFORMER), dtype)
        text_encoder = frozen(CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_VIT_L14_TEXT)), dtype)
        text_encoder_2 = frozen(CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIG_G_TEXT)), dtype)
        text_encoder_3 = frozen(T5EncoderModel(T5Config(**T5_XXL_ENCODER)), dtype)
        vae = frozen(AutoencoderKL(**SD3_VAE), dtype)
    base = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SD35_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        text_encoder_3=text_encoder_3,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_g_tokenizer(),
        tokenizer_3=t5_tokenizer(),
    )
    return _pipelines("sd3", dtype, base, None)


def build_flux_dev(device: torch.device, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> FamilyPipelines:
    """FLUX.1 [dev] and FLUX.1 Fill [dev] (sharing the VAE, the text encoders and tokenizers)."""
    with random_weights(device, dtype, seed):
        transformer = frozen(FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER), dtype)
        fill_transformer = frozen(FluxTransformer2DModel(**FLUX_FILL_TRANSFORMER), dtype)
        text_encoder = frozen(CLIPTextModel(CLIPTextConfig(**CLIP_VIT_L14_TEXT)), dtype)
        text_encoder_2 = frozen(T5EncoderModel(T5Config(**T5_XXL_ENCODER)), dtype)
        vae = frozen(AutoencoderKL(**FLUX_VAE), dtype)
    shared = {"vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "tokenizer": clip_tokenizer(), "tokenizer_2": t5_tokenizer()}
    base = FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG), **shared)
    fill = FluxFillPipeline(transformer=fill_transformer, scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG), **shared)
    return _pipelines("flux", dtype, base, fill)


def build_kontext_dev(device: torch.device, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> FamilyPipelines:
    """FLUX.1 Kontext [dev] (no twin: an instruction editor)."""
    with random_weights(device, dtype, seed):
        transformer = frozen(FluxTransformer2DModel(**KONTEXT_DEV_TRANSFORMER), dtype)
        text_encoder = frozen(CLIPTextModel(CLIPTextConfig(**CLIP_VIT_L14_TEXT)), dtype)
        text_encoder_2 = frozen(T5EncoderModel(T5Config(**T5_XXL_ENCODER)), dtype)
        vae = frozen(AutoencoderKL(**FLUX_VAE), dtype)
    kontext = FluxKontextPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=t5_tokenizer(),
    )
    return _pipelines("flux_kontext", dtype, kontext, None)


def build_qwen_image_edit(device: torch.device, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> FamilyPipelines:
    """Qwen-Image-Edit (no twin: an instruction editor)."""
    tokenizer = qwen_tokenizer()
    config = Qwen2_5_VLConfig(text_config=QWEN25_VL_7B_TEXT, vision_config=QWEN25_VL_7B_VISION, **vision_token_ids(tokenizer))
    with random_weights(device, dtype, seed):
        transformer = frozen(QwenImageTransformer2DModel(**QWEN_IMAGE_TRANSFORMER), dtype)
        text_encoder = frozen(Qwen2_5_VLForConditionalGeneration(config), dtype)
        vae = frozen(AutoencoderKLQwenImage(**QWEN_IMAGE_VAE), dtype)
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(QWEN_IMAGE_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=qwen_processor(tokenizer, **QWEN25_VL_IMAGE_PROCESSOR),
        transformer=transformer,
    )
    return _pipelines("qwen_image_edit", dtype, pipe, None)


def _pipelines(family: str, dtype: torch.dtype, base, inpaint) -> FamilyPipelines:
    for pipe in (base, inpaint):
        if pipe is not None:
            finish_pipeline(pipe, dtype, RESOLUTION)
    return FamilyPipelines(base=base, inpaint=inpaint, family=family, resolution=RESOLUTION)


@dataclass(frozen=True)
class Architecture:
    """A full-size model to time: its family, its builder and the precision its weights are published in."""

    family: str
    build: Callable[[torch.device, torch.dtype, int], FamilyPipelines]
    dtype: torch.dtype


ARCHITECTURES: dict[str, Architecture] = {
    "sdxl": Architecture("sdxl", build_sdxl, torch.float16),
    "sd35_medium": Architecture("sd3", build_sd35_medium, torch.bfloat16),
    "flux_dev": Architecture("flux", build_flux_dev, torch.bfloat16),
    "kontext_dev": Architecture("flux_kontext", build_kontext_dev, torch.bfloat16),
    "qwen_image_edit": Architecture("qwen_image_edit", build_qwen_image_edit, torch.bfloat16),
}
"""The speed benchmark's full-size architectures, by ``--arch`` name."""
