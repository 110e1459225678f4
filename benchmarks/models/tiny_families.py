"""Tiny random-weight models of SDXL, SD 3.5, FLUX.1 (with their inpainting twins), FLUX.1 Kontext and Qwen-Image-Edit, built offline.

Each keeps what the editing methods depend on in its family and is small enough to sample an
image in a fraction of a second on a CPU (64 px images; the VAEs downsample by 2, so latents
are 32 x 32):

- SDXL: a UNet with the text-time conditioning (pooled CLIP-G embedding + 6 size/crop ids),
  cross-attention at latent/2 and latent/4 as in SDXL (whose highest level has none), two
  text encoders (CLIP-L-like ``CLIPTextModel``, CLIP-G-like ``CLIPTextModelWithProjection``)
  whose hidden states are concatenated, the Euler scheduler of SDXL; the inpainting twin's UNet
  takes 9 input channels (latents, mask, masked-image latents).
- SD 3.5: ``SD3Transformer2DModel`` (joint attention over image and text tokens, patch 2, RMS
  qk-norms, a dual-attention block as in 3.5 medium), two ``CLIPTextModelWithProjection`` and a
  ``T5EncoderModel``, 16 latent channels with SD3's VAE scaling and shift, flow matching.
- FLUX.1 [dev]: ``FluxTransformer2DModel`` with double- and single-stream blocks, rotary
  embeddings and the guidance embedding; ``CLIPTextModel`` (pooled) + ``T5EncoderModel``; the
  Fill twin's transformer takes the packed latents, masked-image latents and mask.
- FLUX.1 Kontext [dev]: FLUX.1 [dev]'s parts in ``FluxKontextPipeline`` (the input image's tokens
  join the transformer's sequence).
- Qwen-Image-Edit: ``QwenImageTransformer2DModel`` (joint attention, 3-axis rotary embeddings),
  Qwen-Image's causal 3-D VAE (``AutoencoderKLQwenImage``, downsampling by 8 as the real one) and
  a Qwen2.5-VL text encoder with its vision tower, which reads the input image beside the
  instruction. Its pipeline scales the input to a 1024 x 1024 area for the VAE and the encoder
  whatever the model, so an edit costs tens of seconds on a CPU even at this size.

Tokenizers are the real CLIP BPE (:func:`benchmarks.models.tiny.clip_tokenizer`), a T5-style
SentencePiece tokenizer and a Qwen2-style BPE trained offline (:mod:`benchmarks.models.t5_tokenizer`,
:mod:`benchmarks.models.qwen_processor`). The
models are saved with ``save_pretrained`` in the folder layout of the hub repositories and
loaded back through :func:`benchmarks.models.families.load_family`, as real models are.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLQwenImage,
    DiffusionPipeline,
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
    CLIPTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    T5Config,
    T5EncoderModel,
)

from benchmarks.models.families import FamilyPipelines, load_family
from benchmarks.models.qwen_processor import qwen_processor, qwen_tokenizer, vision_token_ids
from benchmarks.models.t5_tokenizer import t5_tokenizer
from benchmarks.models.tiny import (
    cache_root,
    clip_tokenizer,
    save_pipelines,
    tiny_clip_config,
    tiny_unet,
    tiny_vae,
)
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath

# Bump whenever an architecture or the weight initialisation changes, so stale caches are not reused.
TINY_FAMILY_VERSION = "v1"
IMAGE_SIZE = 64
_LATENT_SIZE = IMAGE_SIZE // 2

# The scheduler_config.json files of the real repositories.
SDXL_SCHEDULER_CONFIG = {  # stabilityai/stable-diffusion-xl-base-1.0
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}
SD35_SCHEDULER_CONFIG = {  # stabilityai/stable-diffusion-3.5-medium and -large
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 3.0,
}
FLUX_DEV_SCHEDULER_CONFIG = {  # black-forest-labs/FLUX.1-dev, FLUX.1-Fill-dev and FLUX.1-Kontext-dev
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}
QWEN_IMAGE_SCHEDULER_CONFIG = {  # Qwen/Qwen-Image and Qwen/Qwen-Image-Edit
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "invert_sigmas": False,
    "max_image_seq_len": 8192,
    "max_shift": 0.9,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.02,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}

# Text encoder widths. CLIP-L and CLIP-G differ (as 768 and 1280 do), so a layout that mixes up
# the two encoders' hidden states fails loudly; SD 3.x zero-pads their concatenation to T5's width.
_CLIP_L_WIDTH, _CLIP_G_WIDTH, _CLIP_G_PROJECTION = 32, 48, 40
_T5_WIDTH = 96
_QWEN_VL_WIDTH = 64


def build_tiny_sdxl(seed: int = 0) -> tuple[StableDiffusionXLPipeline, StableDiffusionXLInpaintPipeline]:
    """SDXL base and inpainting pipelines with seeded random weights, sharing VAE and text encoders."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = tiny_vae(scaling_factor=0.13025, force_upcast=True)  # SDXL's VAE asks to decode in float32
        text_encoder = CLIPTextModel(_clip(_CLIP_L_WIDTH))
        text_encoder_2 = CLIPTextModelWithProjection(_clip(_CLIP_G_WIDTH, _CLIP_G_PROJECTION))
        unet = _sdxl_unet(in_channels=4)
        inpaint_unet = _sdxl_unet(in_channels=9)
    shared = {
        "vae": _frozen(vae),
        "text_encoder": _frozen(text_encoder),
        "text_encoder_2": _frozen(text_encoder_2),
        "tokenizer": clip_tokenizer(),
        "tokenizer_2": clip_g_tokenizer(),
    }
    base = StableDiffusionXLPipeline(unet=_frozen(unet), scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG), **shared)
    inpaint = StableDiffusionXLInpaintPipeline(
        unet=_frozen(inpaint_unet),
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        requires_aesthetics_score=False,  # as diffusers/stable-diffusion-xl-1.0-inpainting-0.1
        **shared,
    )
    return _quiet(base), _quiet(inpaint)


def build_tiny_sd3(seed: int = 0) -> tuple[StableDiffusion3Pipeline, None]:
    """An SD 3.5 pipeline with seeded random weights; SD 3.x has no inpainting twin."""
    tokenizer_3 = t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = _flow_vae(scaling_factor=1.5305, shift_factor=0.0609)
        text_encoder = CLIPTextModelWithProjection(_clip(_CLIP_L_WIDTH, _CLIP_L_WIDTH))
        text_encoder_2 = CLIPTextModelWithProjection(_clip(_CLIP_G_WIDTH, _CLIP_G_PROJECTION))
        text_encoder_3 = T5EncoderModel(_t5_config(len(tokenizer_3)))
        transformer = SD3Transformer2DModel(
            sample_size=_LATENT_SIZE,
            patch_size=2,
            in_channels=16,
            out_channels=16,
            num_layers=3,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=_T5_WIDTH,
            caption_projection_dim=32,  # = heads x head width, as in SD3
            pooled_projection_dim=_CLIP_L_WIDTH + _CLIP_G_PROJECTION,
            pos_embed_max_size=_LATENT_SIZE,
            dual_attention_layers=(0,),  # 3.5 medium's first blocks add an image-only self-attention
            qk_norm="rms_norm",
        )
    base = StableDiffusion3Pipeline(
        transformer=_frozen(transformer),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SD35_SCHEDULER_CONFIG),
        vae=_frozen(vae),
        text_encoder=_frozen(text_encoder),
        text_encoder_2=_frozen(text_encoder_2),
        text_encoder_3=_frozen(text_encoder_3),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_g_tokenizer(),
        tokenizer_3=tokenizer_3,
    )
    return _quiet(base), None


def build_tiny_flux(seed: int = 0) -> tuple[FluxPipeline, FluxFillPipeline]:
    """FLUX.1 [dev] and FLUX.1 Fill [dev] pipelines with seeded random weights, sharing VAE and encoders."""
    tokenizer_2 = t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae, text_encoder, text_encoder_2 = _flux_vae_and_encoders(len(tokenizer_2))
        packed = 4 * vae.config.latent_channels  # the pipelines pack 2 x 2 latents into one token
        transformer = _flux_transformer(in_channels=packed)
        # Fill: packed latents and packed masked-image latents, and the pixel mask folded into each
        # token (4 latents x vae_scale_factor^2 pixels): 384 channels in FLUX.1-Fill-dev (vae_scale_factor
        # 8), 144 here (2).
        vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        fill_transformer = _flux_transformer(in_channels=2 * packed + 4 * vae_scale_factor**2, out_channels=packed)
    shared = {
        "vae": _frozen(vae),
        "text_encoder": _frozen(text_encoder),
        "text_encoder_2": _frozen(text_encoder_2),
        "tokenizer": clip_tokenizer(),
        "tokenizer_2": tokenizer_2,
    }
    base = FluxPipeline(
        transformer=_frozen(transformer),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG),
        **shared,
    )
    fill = FluxFillPipeline(
        transformer=_frozen(fill_transformer),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG),
        **shared,
    )
    return _quiet(base), _quiet(fill)


def build_tiny_kontext(seed: int = 0) -> tuple[FluxKontextPipeline, None]:
    """A FLUX.1 Kontext [dev] pipeline with seeded random weights: tiny FLUX.1 [dev]'s parts (Kontext's
    transformer is FLUX.1 [dev]'s architecture; the input image's tokens join the sequence). No twin."""
    tokenizer_2 = t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae, text_encoder, text_encoder_2 = _flux_vae_and_encoders(len(tokenizer_2))
        transformer = _flux_transformer(in_channels=4 * vae.config.latent_channels)
    kontext = FluxKontextPipeline(
        transformer=_frozen(transformer),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER_CONFIG),  # FLUX.1-Kontext-dev's is FLUX.1-dev's
        vae=_frozen(vae),
        text_encoder=_frozen(text_encoder),
        text_encoder_2=_frozen(text_encoder_2),
        tokenizer=clip_tokenizer(),
        tokenizer_2=tokenizer_2,
    )
    return _quiet(kontext), None


def build_tiny_qwen_image_edit(seed: int = 0) -> tuple[QwenImageEditPipeline, None]:
    """A Qwen-Image-Edit pipeline with seeded random weights. No twin."""
    tokenizer = qwen_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLQwenImage(base_dim=8, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True])
        text_encoder = Qwen2_5_VLForConditionalGeneration(_qwen_vl_config(tokenizer))
        transformer = QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=4 * vae.config.z_dim,  # 2 x 2 latents packed into one token
            out_channels=vae.config.z_dim,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_QWEN_VL_WIDTH,
            axes_dims_rope=(4, 6, 6),  # sums to the head width, as (16, 56, 56) does to 128
        )
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(QWEN_IMAGE_SCHEDULER_CONFIG),
        vae=_frozen(vae),
        text_encoder=_frozen(text_encoder),
        tokenizer=tokenizer,
        processor=qwen_processor(tokenizer),
        transformer=_frozen(transformer),
    )
    return _quiet(pipe), None


TINY_BUILDERS: dict[str, Callable[[int], tuple[DiffusionPipeline, DiffusionPipeline | None]]] = {
    "sdxl": build_tiny_sdxl,
    "sd3": build_tiny_sd3,
    "flux": build_tiny_flux,
    "flux_kontext": build_tiny_kontext,
    "qwen_image_edit": build_tiny_qwen_image_edit,
}
"""Builder of each family's tiny (base, inpainting twin or None) pipelines, by family name."""


def tiny_family_pipelines(
    family: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    inpaint: bool = True,
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> FamilyPipelines:
    """A family's tiny model, built once into ``<cache_dir>/tiny-<family>-v1`` and then loaded from disk.

    Loading goes through :func:`benchmarks.models.families.load_family`, like a real model; the
    cache folder is chosen as for :func:`benchmarks.models.tiny.tiny_pipelines`. Weights are
    float32 on every device. ``inpaint``: load the twin, where the family has one. ``fast_path``
    and ``channels_last``: see :func:`benchmarks.models.loading.optimize`.
    """
    if family not in TINY_BUILDERS:
        raise ValueError(f"Unknown tiny model family {family!r}; expected one of: {', '.join(TINY_BUILDERS)}.")
    root = cache_root(cache_dir) / f"tiny-{family}-{TINY_FAMILY_VERSION}"
    if not root.is_dir():
        base, twin = TINY_BUILDERS[family]()
        save_pipelines(root, {"base": base} if twin is None else {"base": base, "inpaint": twin})
    twin_folder = root / "inpaint"
    return load_family(
        family,
        str(root / "base"),
        str(twin_folder) if inpaint and twin_folder.is_dir() else None,
        resolution=IMAGE_SIZE,
        device=device,
        dtype="float32",
        fast_path=fast_path,
        channels_last=channels_last,
    )


def _flow_vae(scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    """SD3's and FLUX's VAEs: 16 latent channels, a shift as well as a scale, no quant convs."""
    return tiny_vae(
        latent_channels=16,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def _flux_vae_and_encoders(t5_vocab_size: int) -> tuple[AutoencoderKL, CLIPTextModel, T5EncoderModel]:
    """FLUX.1's VAE (with its scaling and shift), CLIP-L-like and T5-like encoders, drawn in this order."""
    vae = _flow_vae(scaling_factor=0.3611, shift_factor=0.1159)
    return vae, CLIPTextModel(_clip(_CLIP_L_WIDTH)), T5EncoderModel(_t5_config(t5_vocab_size))


def _clip(width: int, projection_dim: int | None = None) -> CLIPTextConfig:
    return tiny_clip_config(hidden_size=width, projection_dim=projection_dim or width)


def clip_g_tokenizer() -> CLIPTokenizer:
    """The second CLIP tokenizer of SDXL and SD 3.x: the same BPE, padding with "!" (id 0)."""
    tokenizer = clip_tokenizer()
    tokenizer.pad_token = "!"
    return tokenizer


def _t5_config(vocab_size: int) -> T5Config:
    """A T5 v1.1-style encoder (gated GELU)."""
    return T5Config(
        vocab_size=vocab_size,
        d_model=_T5_WIDTH,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def _qwen_vl_config(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL whose language model is grouped-query attention with multimodal rotary
    embeddings (sections over time, height and width), and whose vision tower has 14-pixel
    patches merged 2 x 2, windowed attention and one full-attention block, as the 7B's."""
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": _QWEN_VL_WIDTH,
            "intermediate_size": 2 * _QWEN_VL_WIDTH,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            # the head's 16 channels rotate in 8 pairs: 2 by time, 3 by height, 3 by width ([16, 24, 24] of 64 in the 7B)
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": _QWEN_VL_WIDTH,
            "fullatt_block_indexes": [1],
        },
        **vision_token_ids(tokenizer),
    )


def _sdxl_unet(in_channels: int) -> UNet2DConditionModel:
    # SDXL's layout is the tiny UNet's (no attention at the highest level, cross-attention at
    # latent/2 and /4) plus deeper transformers at /4 and in the mid block, linear projections,
    # both encoders' hidden states as context, and the text-time embedding of the pooled text
    # embedding and 6 size/crop ids.
    time_ids_width = 8
    return tiny_unet(
        in_channels,
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=_CLIP_L_WIDTH + _CLIP_G_WIDTH,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_ids_width,
        projection_class_embeddings_input_dim=6 * time_ids_width + _CLIP_G_PROJECTION,
    )


def _flux_transformer(in_channels: int, out_channels: int | None = None) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=in_channels,
        out_channels=out_channels,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=_T5_WIDTH,
        pooled_projection_dim=_CLIP_L_WIDTH,
        guidance_embeds=True,  # FLUX.1 [dev] is guidance-distilled
        axes_dims_rope=(4, 6, 6),  # sums to the head width, as (16, 56, 56) does to 128
    )


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    return module.eval().requires_grad_(False)


def _quiet(pipe: DiffusionPipeline) -> DiffusionPipeline:
    pipe.set_progress_bar_config(disable=True)
    return pipe
