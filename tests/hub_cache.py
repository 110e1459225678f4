"""A filled cache, built offline: every file the real-weights path loads, where the libraries look for it.

``python run.py model=sd14 dataset=editing_mask metrics=paper`` on a machine that has downloaded
everything reads: the two Stable Diffusion repositories and the CLIP and DeiT weights from the
Hugging Face hub cache (``$HF_HOME/hub/models--<org>--<name>/`` with ``refs/main``,
``snapshots/<commit>/`` and ``blobs/``), the AlexNet of LPIPS and the FID Inception from the
torch hub cache (``$TORCH_HOME/hub/checkpoints/``), and the split lists and the extracted
Editing-Mask archive from the harness's own cache (``$INSTDIFFEDIT_CACHE``). :func:`build_filled_cache`
writes all of them with small random weights of the right architectures, so a test can run
the user's commands with ``HF_HUB_OFFLINE=1`` and prove every loader end to end. The weights
are noise: nothing here measures anything.

The Stable Diffusion repositories hold what the hub's do (``model_index.json`` with the safety
checker and the feature extractor, the fp16 variant files beside the full-precision ones), with
the tiny SD-architecture model of :mod:`benchmarks.models.tiny` (64 px) in place of the weights.
The torchvision, torch-fidelity and timm architectures are fixed, so their state dicts have the
real shapes; to keep the files small, large tensors are views of one shared random pool (a
saved view stores only its storage, once) where the network normalises its activations.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import PIL.Image
import torch

from benchmarks.data.downloads import extract_zip
from benchmarks.data.splits import EDITING_MASK_ZIP, LISTS, EditingMaskSplit, ListEntry
from benchmarks.models.loading import SD14_BASE, SD_INPAINT

CLIP_REPO = "openai/clip-vit-large-patch14"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception
LIST_FILES = {split: Path(remote.url).name for split, remote in LISTS.items()}


@dataclass(frozen=True)
class FilledCache:
    """The caches' folders and the environment that points the libraries at them (offline)."""

    hf_home: Path
    torch_home: Path
    instdiffedit_cache: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "HF_HOME": str(self.hf_home),
            "HF_HUB_OFFLINE": "1",
            "TORCH_HOME": str(self.torch_home),
            "INSTDIFFEDIT_CACHE": str(self.instdiffedit_cache),
        }


def build_filled_cache(root: Path, lists: Path) -> FilledCache:
    """Every cache of a user who downloaded everything, under ``root``; ``lists`` holds the authors'
    split lists (they are verified by sha256, so only the real files do)."""
    cache = FilledCache(root / "huggingface", root / "torch", root / "instdiffedit")
    save_stable_diffusion_repos(cache.hf_home)
    save_clip_repo(cache.hf_home)
    save_deit_repo(cache.hf_home)
    save_torch_hub_checkpoints(cache.torch_home)
    save_split_files(cache.instdiffedit_cache, lists)
    return cache


# ------------------------------------------------------------------------------------------------
# The Hugging Face hub cache
# ------------------------------------------------------------------------------------------------


def hub_snapshot(hf_home: Path, repo_id: str, files: Path) -> Path:
    """Put the files of the folder ``files`` into the hub cache as ``repo_id``'s main revision.

    As ``huggingface_hub`` stores a download: each file's content once in ``blobs/<sha256>``, a
    relative link to it in ``snapshots/<commit>/<path>``, and the commit in ``refs/main``.
    """
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex id; the hub's are commit hashes
    snapshot = repo / "snapshots" / commit
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def _tiny_clip_config():
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )


def save_stable_diffusion_repos(hf_home: Path) -> None:
    """``CompVis/stable-diffusion-v1-4`` and ``stable-diffusion-v1-5/stable-diffusion-inpainting``, tiny.

    Each repository as on the hub: all seven components in ``model_index.json`` (the safety
    checker and the CLIP feature extractor too, which the harness does not load), full-precision
    safetensors and their fp16 variants (``*.fp16.safetensors``).
    """
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPImageProcessor

    from benchmarks.models.tiny import build_tiny_pipelines

    base, inpaint = build_tiny_pipelines()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        checker = StableDiffusionSafetyChecker(_tiny_clip_config()).eval()
    extras = {"safety_checker": checker, "feature_extractor": CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})}
    pipes = {
        SD14_BASE: StableDiffusionPipeline(**{**base.components, **extras}, requires_safety_checker=True),
        SD_INPAINT: StableDiffusionInpaintPipeline(**{**inpaint.components, **extras}, requires_safety_checker=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folders = {repo: Path(tmp, repo) for repo in pipes}
        for repo, pipe in pipes.items():  # full precision first: the two pipelines share modules
            pipe.save_pretrained(folders[repo], safe_serialization=True)
        for repo, pipe in pipes.items():
            pipe.to(torch.float16).save_pretrained(folders[repo], safe_serialization=True, variant="fp16")
        for repo, folder in folders.items():
            _hub_tokenizer_files(folder / "tokenizer")
            hub_snapshot(hf_home, repo, folder)


def _hub_tokenizer_files(folder: Path) -> None:
    """The ``tokenizer/`` folder as the SD repositories hold it: vocab.json and merges.txt with their
    configs (transformers 5 saves a tokenizer.json instead, a path the real repositories do not take)."""
    import json

    from benchmarks.models.tiny import save_clip_vocabulary

    for path in folder.iterdir():
        path.unlink()
    save_clip_vocabulary(folder)
    tokens = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(tokens))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **tokens}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def save_clip_repo(hf_home: Path) -> None:
    """``openai/clip-vit-large-patch14`` (CLIPScore): a tiny CLIP with the real tokenizer, saved by transformers."""
    from fakes import tiny_clip

    model, processor = tiny_clip()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        hub_snapshot(hf_home, CLIP_REPO, Path(tmp))


def _pooled(state: Mapping[str, torch.Tensor], keys: Iterable[str], std: float, pool_size: int = 1 << 21) -> dict[str, torch.Tensor]:
    """``state`` with the tensors of ``keys`` replaced by views of one random pool (N(0, std)).

    ``torch.save`` stores a storage once however many views share it, so the file holds the pool
    and the small tensors only. A tensor larger than the pool repeats one pooled row.
    """
    pool = torch.randn(pool_size, generator=torch.Generator().manual_seed(0)) * std
    out = dict(state)
    for key in keys:
        shape = state[key].shape
        out[key] = pool[: state[key].numel()].view(shape) if state[key].numel() <= pool_size else pool[: shape[-1]].expand(shape)
    return out


def save_deit_repo(hf_home: Path) -> None:
    """timm's ``deit_base_patch16_384`` (edit accuracy) in the hub cache, as ``pytorch_model.bin``.

    The repository (``timm/deit_base_patch16_384.fb_in1k``) holds ``model.safetensors`` and
    ``pytorch_model.bin``; only the latter can share storage, so only it is written (the
    loader looks for both, in that order). DeiT normalises every block (LayerNorm), so pooled
    weights of timm's init scale keep its activations finite.
    """
    import timm

    name = "deit_base_patch16_384"
    hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    state = timm.create_model(name, pretrained=False).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(_pooled(state, [k for k, v in state.items() if v.dim() >= 2], std=0.02), Path(tmp, "pytorch_model.bin"))
        hub_snapshot(hf_home, hub_id, Path(tmp))


# ------------------------------------------------------------------------------------------------
# The torch hub cache
# ------------------------------------------------------------------------------------------------


def save_torch_hub_checkpoints(torch_home: Path) -> None:
    """torchvision's AlexNet (LPIPS) and torch-fidelity's FID Inception, where ``torch.hub`` keeps downloads.

    ``torch.hub.load_state_dict_from_url`` loads a file already in ``$TORCH_HOME/hub/checkpoints``
    without checking its hash (the hash is checked on download), as a user's copy is loaded.
    LPIPS normalises AlexNet's features, so pooled weights do; the Inception's batch norms do not
    normalise in eval mode, so it keeps its own initialisation (a 95 MB file).
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity
    from torchvision.models import alexnet

    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = alexnet().state_dict()
        torch.save(_pooled(state, [k for k, v in state.items() if v.dim() >= 2], std=0.02), checkpoints / ALEXNET_FILE)
        with (
            mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}),
            mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"),
        ):
            inception = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        torch.save(inception.state_dict(), checkpoints / INCEPTION_FILE)


# ------------------------------------------------------------------------------------------------
# The harness's cache and the user's folders
# ------------------------------------------------------------------------------------------------


def _image(size: tuple[int, int], seed: int, mask: bool = False, format: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    if mask:
        pixels = np.zeros(size[::-1], dtype=np.uint8)
        pixels[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] = 255
    else:
        pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def save_split_files(instdiffedit_cache: Path, lists: Path) -> None:
    """The three lists where the harness downloads them, and the Editing-Mask archive extracted there.

    The archive (``Editing-Mask/images/<id>.png``, ``Editing-Mask/masks/<id>.png``; the real
    archive's layout is undocumented, the loader matches files by stem) is built as a zip and
    extracted by the harness's own :func:`benchmarks.data.downloads.extract_zip`, as after a download.
    """
    from benchmarks.data.splits import parse_list

    for split, name in LIST_FILES.items():
        target = instdiffedit_cache / split / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((lists / name).read_bytes())
    entries = parse_list((lists / LIST_FILES["editing_mask"]).read_text(encoding="utf-8"))
    archive = instdiffedit_cache / EditingMaskSplit.name / Path(EDITING_MASK_ZIP.url).name
    with zipfile.ZipFile(archive, "w") as zf:
        for index, entry in enumerate(entries):
            zf.writestr(f"Editing-Mask/images/{entry.id}.png", _image((64, 48), index))
            zf.writestr(f"Editing-Mask/masks/{entry.id}.png", _image((64, 48), index, mask=True))
    extract_zip(archive, instdiffedit_cache / EditingMaskSplit.name / "files")


def imagenet_folders(root: Path, entries: Iterable[ListEntry], train_classes: Iterable[str]) -> tuple[Path, Path]:
    """A user's ImageNet validation folder (every listed file, flat) and a train folder with two
    images of each of ``train_classes`` (ImageNet names), one folder per WordNet id."""
    from benchmarks.metrics.imagenet_classes import imagenet_class_index, imagenet_names

    val, train = root / "val", root / "train"
    val.mkdir(parents=True)
    for index, entry in enumerate(entries):
        (val / entry.meta["file"]).write_bytes(_image((80, 64), index, format="JPEG"))
    wnids = imagenet_names()[0]
    for index, name in enumerate(sorted(set(train_classes))):
        folder = train / wnids[imagenet_class_index(name)]
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"{folder.name}_{k}.JPEG").write_bytes(_image((80, 64), 10_000 + 2 * index + k, format="JPEG"))
    return val, train
