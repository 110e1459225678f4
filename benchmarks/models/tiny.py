"""A tiny random-weight model with Stable Diffusion 1.x's architecture, built fully offline.

It keeps everything the editing methods depend on -- the real CLIP tokenizer (so prompts
split into the same tokens as with SD), cross-attention at latent/2 and latent/4 in both the
down and the up blocks and in the mid block, SD 1.4's noise schedule, and an inpainting twin
with a 9-channel UNet -- while being small enough that a 25-step sampling loop takes seconds
on a CPU. Images are 64x64 pixels and latents 32x32 (the VAE downsamples by 2, not 8), so
InstDiffEdit's maps come from latent/4 = 8x8.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from benchmarks.models.loading import Pipelines, load_pretrained
from instdiffedit.fast_paths import DEFAULT_FAST_PATH, FastPath

# Bump the version whenever the architecture or the weight initialisation changes, so stale
# caches are not reused.
TINY_MODEL_NAME = "tiny-v1"
IMAGE_SIZE = 64

_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
_CONTEXT_LENGTH = 77
# CLIP uses the first 49152 - 256 - 2 merges of the file; with 256 byte tokens, 256 byte+"</w>"
# tokens and the two specials this gives the 49408-token vocabulary of SD 1.x's text encoder.
_NUM_MERGES = 49152 - 256 - 2

# The scheduler_config.json of CompVis/stable-diffusion-v1-4.
SD14_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}


def clip_tokenizer() -> CLIPTokenizer:
    """SD 1.x's CLIP BPE tokenizer, rebuilt from the vocabulary file shipped with open_clip."""
    with tempfile.TemporaryDirectory() as folder:
        save_clip_vocabulary(Path(folder))
        return CLIPTokenizer.from_pretrained(folder, model_max_length=_CONTEXT_LENGTH, pad_token=_EOS)


def save_clip_vocabulary(folder: Path) -> None:
    """``vocab.json`` and ``merges.txt`` of SD 1.x's CLIP tokenizer: the files of the hub's
    ``tokenizer/`` folders, the on-disk format every transformers version reads."""
    vocab, merges = _clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    lines = gzip.decompress(_bpe_vocab_path().read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    byte_tokens = list(_bytes_to_unicode().values())
    tokens = [
        *byte_tokens,
        *(token + "</w>" for token in byte_tokens),
        *("".join(merge) for merge in merges),
        _BOS,
        _EOS,
    ]
    return {token: index for index, token in enumerate(tokens)}, merges


def _bpe_vocab_path() -> Path:
    """Find the BPE file without importing its package (importing open_clip takes seconds)."""
    for package in ("open_clip", "clip"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location, _BPE_FILE)
            if path.is_file():
                return path
    raise ModuleNotFoundError(f"The CLIP vocabulary {_BPE_FILE} was not found; install open_clip_torch (package open_clip) or clip-anytorch (package clip).")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters.

    Printable latin-1 bytes map to themselves; the others are shifted to code points from 256
    on, so that no BPE token contains whitespace or control characters.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    code_points = dict(zip(printable, printable))
    shifted = (byte for byte in range(256) if byte not in code_points)
    for offset, byte in enumerate(shifted):
        code_points[byte] = 256 + offset
    # Insertion order (printable bytes first) fixes the token ids of the byte tokens.
    return {byte: chr(point) for byte, point in code_points.items()}


def build_tiny_pipelines(
    seed: int = 0,
) -> tuple[StableDiffusionPipeline, StableDiffusionInpaintPipeline]:
    """Build the base and inpainting pipelines with seeded random weights.

    The two pipelines share the VAE, text encoder and tokenizer; the global torch RNG is left
    untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = tiny_vae()
        text_encoder = CLIPTextModel(tiny_clip_config())
        unet = tiny_unet(in_channels=4)
        inpaint_unet = tiny_unet(in_channels=9)
    for model in (vae, text_encoder, unet, inpaint_unet):
        model.eval()
    shared = {
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": clip_tokenizer(),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    base = StableDiffusionPipeline(unet=unet, scheduler=_scheduler(), **shared)
    inpaint = StableDiffusionInpaintPipeline(unet=inpaint_unet, scheduler=_scheduler(), **shared)
    for pipe in (base, inpaint):
        pipe.set_progress_bar_config(disable=True)
    return base, inpaint


def tiny_vae(latent_channels: int = 4, scaling_factor: float = 0.18215, **config: object) -> AutoencoderKL:
    """The tiny models' VAE: two levels, one downsampling, so latents are IMAGE_SIZE / 2.

    ``config`` adds other AutoencoderKL settings (e.g. SD3's shift factor); the defaults are SD 1.x's.
    """
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=32,
        sample_size=IMAGE_SIZE,
        scaling_factor=scaling_factor,
        **config,
    )


def tiny_clip_config(**widths: int) -> CLIPTextConfig:
    """The tiny CLIP text encoder's config, on CLIP's real vocabulary and 77 positions.

    ``widths`` overrides sizes (``hidden_size``, ``projection_dim``) for the text encoders of
    other families; the defaults are the tiny SD 1.x model's.
    """
    defaults = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    return CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=_CONTEXT_LENGTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        **{**defaults, **widths},
    )


def tiny_unet(in_channels: int, **config: object) -> UNet2DConditionModel:
    """The tiny UNet; ``config`` overrides settings (SDXL's text-time conditioning, wider text)."""
    # SD leaves its lowest resolution without attention; the tiny UNet leaves out the highest
    # (a 1024-token self-attention would dominate its cost on a CPU). Cross-attention exists
    # at latent/2 and /4 in both directions: InstDiffEdit reads latent/4, LEDITS++ needs both.
    defaults = {
        "sample_size": IMAGE_SIZE // 2,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (16, 32, 64),
        "layers_per_block": 1,
        "cross_attention_dim": 32,
        # diffusers' legacy name: SD UNets read it as the number of heads, so every head is
        # 16 wide; 2 and 4 heads at latent/2 and /4 (and 4 in the mid block).
        "attention_head_dim": (1, 2, 4),
        "norm_num_groups": 8,
    }
    return UNet2DConditionModel(in_channels=in_channels, **{**defaults, **config})


def _scheduler() -> PNDMScheduler:
    return PNDMScheduler(**SD14_SCHEDULER_CONFIG)


def tiny_pipelines(
    cache_dir: str | os.PathLike | None = None,
    *,
    family: str = "sd",
    device: str = "auto",
    inpaint: bool = True,
    fast_path: FastPath = DEFAULT_FAST_PATH,
    channels_last: bool = False,
) -> Pipelines:
    """The tiny model, built once into ``<cache_dir>/tiny-v1`` and then loaded from disk.

    Loading goes through :func:`benchmarks.models.loading.load_pretrained`, like a real model. The
    default ``cache_dir`` is ``$INSTDIFFEDIT_CACHE`` or ``~/.cache/instdiffedit``. Weights are
    float32 on every device, so results do not depend on where the tests run. ``fast_path`` and
    ``channels_last``: see :func:`benchmarks.models.loading.optimize`.
    """
    root = cache_root(cache_dir) / TINY_MODEL_NAME
    if not root.is_dir():
        _build_into(root)
    return load_pretrained(
        str(root / "base"),
        str(root / "inpaint") if inpaint else None,
        family=family,
        device=device,
        dtype="float32",
        fast_path=fast_path,
        channels_last=channels_last,
    )


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``$INSTDIFFEDIT_CACHE``, else ``~/.cache/instdiffedit``."""
    if cache_dir is None:
        cache_dir = os.environ.get("INSTDIFFEDIT_CACHE") or "~/.cache/instdiffedit"
    return Path(cache_dir).expanduser()


def _build_into(root: Path) -> None:
    base, inpaint = build_tiny_pipelines()
    save_pipelines(root, {"base": base, "inpaint": inpaint})


def save_pipelines(root: Path, pipelines: Mapping[str, DiffusionPipeline]) -> None:
    """Save each pipeline to ``root/<name>`` atomically: staged in a sibling temp dir, then renamed.

    A crash leaves at most a hidden temp dir, never a partial ``root``; when a concurrent
    process wins the rename, its copy is kept.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{root.name}-", dir=root.parent) as tmp:
        staging = Path(tmp, root.name)
        for name, pipe in pipelines.items():
            pipe.save_pretrained(staging / name, safe_serialization=True)
        try:
            staging.rename(root)
        except OSError:
            if not root.is_dir():
                raise
