"""The toy models on disk: three hub-layout pipeline folders that share components, and one archive of them.

``python -m benchmarks.toy.training.train --out models/toy`` writes

* ``models/toy``: the SD 1.x text-to-image pipeline (``StableDiffusionPipeline``) and the classifier;
* ``models/toy-inpaint``: its inpainting twin (``StableDiffusionInpaintPipeline``): its own
  ``unet/`` and ``scheduler/``, the base's ``vae/``, ``text_encoder/`` and ``tokenizer/`` as
  relative symbolic links;
* ``models/toy-dit``: the SD3-architecture pipeline (``StableDiffusion3Pipeline``): its own
  ``transformer/`` and ``scheduler/``, the base's ``vae/`` and tokenizer as links (for both CLIP
  slots), and ``text_encoder/`` as a ``CLIPTextModelWithProjection`` whose weights are two shards:
  the base's text-encoder file (a link) and the text projection; ``text_encoder_2`` links to it.

So ``from_pretrained(folder)`` of each pipeline class loads each folder as it would a hub
repository (the DiT has no T5 encoder: pass :data:`benchmarks.models.families.WITHOUT_T5`, as diffusers documents for SD3
without its third encoder), and no weight is stored twice. Links are checked (same files, same tensors) before
they replace a copy.
"""

from __future__ import annotations

import filecmp
import io
import json
import os
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import (
    StableDiffusion3Pipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)
from safetensors.torch import load_file, save_file

from benchmarks.toy.model import sibling

WEIGHTS = "model.safetensors"
ARCHIVE_PART_BYTES = 15 * 2**20
"""At most 15 MiB a part: the archive comes back from a GPU machine that returns files of up to 16 MiB."""


def save_pipelines(
    out: Path,
    base: StableDiffusionPipeline,
    inpaint: StableDiffusionInpaintPipeline | None = None,
    dit: StableDiffusion3Pipeline | None = None,
) -> list[Path]:
    """Save the pipelines (as they are: cast them to fp16 first) in the layout above; returns the folders written."""
    base.save_pretrained(out, safe_serialization=True)
    folders = [out]
    if inpaint is not None:
        folders.append(save_twin(out, inpaint))
    if dit is not None:
        folder = sibling(out, "dit")
        dit.save_pretrained(folder, safe_serialization=True)
        _link_identical(folder / "vae", out / "vae")
        for component in ("tokenizer", "tokenizer_2"):
            _link_identical(folder / component, out / "tokenizer")
        _shard_text_encoder(folder / "text_encoder", out / "text_encoder")
        _link_text_encoder_2(folder)
        folders.append(folder)
    return folders


def save_twin(out: Path, inpaint: StableDiffusionInpaintPipeline) -> Path:
    """Save the inpainting twin beside the base folder ``out``, its VAE, text encoder and tokenizer links to the base's."""
    twin = sibling(out, "inpaint")
    inpaint.save_pretrained(twin, safe_serialization=True)
    for component in ("vae", "text_encoder", "tokenizer"):
        _link_identical(twin / component, out / component)
    return twin


def _relative_link(path: Path, target: Path) -> None:
    """Replace ``path`` (a file or folder) by a link to ``target``, relative so that the folders can move together."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(os.path.relpath(target, path.parent))


def _link_identical(copy: Path, original: Path) -> None:
    """``copy`` becomes a link to ``original`` once both folders hold the same files, byte for byte."""
    comparison = filecmp.dircmp(copy, original)
    names = sorted(p.name for p in copy.iterdir())
    if comparison.left_only or comparison.right_only or filecmp.cmpfiles(copy, original, names, shallow=False)[1:] != ([], []):
        raise RuntimeError(f"{copy} and {original} differ; they must be the same component to be shared.")
    _relative_link(copy, original)


def _shard_text_encoder(folder: Path, base: Path) -> None:
    """The SD3 text encoder (``CLIPTextModelWithProjection``) as two shards: the base's ``CLIPTextModel``
    weights (a link; transformers maps them under ``text_model.``) and the projection alone."""
    full = load_file(folder / WEIGHTS)
    shared = load_file(base / WEIGHTS)
    own = {name: tensor for name, tensor in full.items() if not name.startswith("text_model.")}
    if set(own) != {"text_projection.weight"} or any(not torch.equal(full[f"text_model.{name}"], tensor) for name, tensor in shared.items()):
        raise RuntimeError(f"The text encoder in {folder} is not the one in {base} plus a projection.")
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    (folder / WEIGHTS).unlink()
    save_file(own, folder / second, metadata={"format": "pt"})
    _relative_link(folder / first, base / WEIGHTS)
    weight_map = {name: first for name in shared} | {name: second for name in own}
    size = sum(t.numel() * t.element_size() for t in (*shared.values(), *own.values()))
    (folder / f"{WEIGHTS}.index.json").write_text(json.dumps({"metadata": {"total_size": size}, "weight_map": weight_map}, indent=1))


def _link_text_encoder_2(folder: Path) -> None:
    """SD3's second CLIP slot holds the same encoder: a link to ``text_encoder`` once both were saved the same."""
    second = folder / "text_encoder_2"
    if json.loads((second / "config.json").read_text()) != json.loads((folder / "text_encoder" / "config.json").read_text()):
        raise RuntimeError(f"{second} and {folder / 'text_encoder'} have different configurations.")
    _relative_link(second, folder / "text_encoder")


def archive(folders: Sequence[Path], path: Path, part_bytes: int = ARCHIVE_PART_BYTES) -> list[Path]:
    """One tar of ``folders`` (links kept as links), written as ``path.00``, ``path.01``, ... of at most
    ``part_bytes`` each; ``cat path.* | tar -x`` in the folders' parent restores them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in folders:
            tar.add(folder, arcname=folder.name)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.[0-9][0-9]"):
        stale.unlink()
    parts = []
    for index, start in enumerate(range(0, len(data), part_bytes)):
        part = path.with_name(f"{path.name}.{index:02d}")
        part.write_bytes(data[start : start + part_bytes])
        parts.append(part)
    return parts
