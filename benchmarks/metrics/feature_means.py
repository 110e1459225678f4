"""Mean Inception features of ImageNet train, overall and per class: the reference of SFID/CSFID.

    python -m benchmarks.metrics.feature_means --train-root /path/to/ILSVRC2012/train --out means.pt

``--train-root`` holds one folder per class, named by WordNet id (``n01440764/...JPEG``), as
ImageNet's train set unpacks. Every image goes through FlexIT's preprocessing
(Resize(256) + CenterCrop(256)) and the FID Inception v3 (2048-d pool features), exactly as
:class:`benchmarks.metrics.corpus.SFID` treats edited images. The output, written atomically, holds
``mean`` (over all images), ``count``, ``class_means`` (1000 x D, ImageNet-1k index order,
nan for classes without images), ``class_counts``, ``wnids`` and ``meta`` (how the features
were made). Progress is checkpointed to ``<out>.partial`` every few batches; running the same
command again resumes from it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from benchmarks.data.files import IMAGE_SUFFIXES
from benchmarks.devices import resolve_device
from benchmarks.metrics.functional import flexit_resize, image_to_uint8
from benchmarks.metrics.imagenet_classes import imagenet_names
from benchmarks.metrics.weights import (
    MetricUnavailableError,
    inception_description,
    load_inception,
)

log = logging.getLogger(__name__)


class _Images(Dataset):
    def __init__(self, files: Sequence[tuple[Path, int]], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[index]
        with PIL.Image.open(path) as image:
            return image_to_uint8(flexit_resize(image, self.size)), label


def list_train_images(train_root: str | Path, limit_per_class: int | None = None) -> list[tuple[Path, int]]:
    """``(path, ImageNet index)`` of every image under the class folders, in a fixed order."""
    root = Path(train_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--train-root {root} is not a folder.")
    wnids = imagenet_names()[0]
    index = {wnid: i for i, wnid in enumerate(wnids)}
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"{len(unknown)} folders of {root} are not ImageNet-1k WordNet ids: {shown}.")
    if not folders:
        raise ValueError(f"{root} has no class folders (expected one per WordNet id, e.g. n01440764).")
    files: list[tuple[Path, int]] = []
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += [(p, index[folder.name]) for p in images[:limit_per_class]]
    return files


def _digest(files: Sequence[tuple[Path, int]], meta: dict[str, Any]) -> str:
    h = hashlib.sha256(repr(sorted(meta.items())).encode())
    for path, label in files:
        h.update(f"{path}\t{label}\n".encode())
    return h.hexdigest()


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def compute_feature_means(
    train_root: str | Path,
    out: str | Path,
    *,
    feature: nn.Module | None = None,
    weights: str | None = None,
    antialias: bool = False,
    size: int = 256,
    batch_size: int = 64,
    workers: int = 4,
    device: str = "auto",
    limit_per_class: int | None = None,
    checkpoint_every: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute the means (see the module docstring), write them to ``out`` and return them.

    ``feature`` injects the extractor (uint8 N x 3 x size x size -> N x D); by default the FID
    Inception v3 of :func:`benchmarks.metrics.weights.load_inception` (``weights``: a local copy).
    """
    out = Path(out).expanduser()
    partial = out.with_name(out.name + ".partial")
    files = list_train_images(train_root, limit_per_class)
    if feature is None:
        feature = load_inception(weights, antialias=antialias, key="--weights", off=None)
        extractor = inception_description(antialias)
    else:
        extractor = f"custom {type(feature).__name__}"
    meta = {"extractor": extractor, "size": size, "preprocess": f"Resize({size}) + CenterCrop({size})", "limit_per_class": limit_per_class}
    digest = _digest(files, meta)
    torch_device = resolve_device(device)
    feature = feature.to(torch_device).eval()

    sums: torch.Tensor | None = None
    counts = torch.zeros(len(imagenet_names()[0]), dtype=torch.int64)
    done = 0
    if partial.is_file():
        state = torch.load(partial, map_location="cpu", weights_only=True)
        if state.get("digest") == digest:
            sums, counts, done = state["sums"], state["counts"], int(state["done"])
            log.info("Resuming from %s: %d of %d images done.", partial, done, len(files))
        else:
            log.warning("Ignoring %s: it was made from other images or settings.", partial)

    def checkpoint() -> None:
        _atomic_save({"digest": digest, "sums": sums, "counts": counts, "done": done}, partial)

    loader = DataLoader(_Images(files[done:], size), batch_size=batch_size, num_workers=workers, shuffle=False)
    with tqdm(total=len(files), initial=done, unit="img", desc="ImageNet features", disable=not progress) as bar:
        with torch.no_grad():
            for step, (images, labels) in enumerate(loader, 1):
                features = feature(images.to(torch_device)).double().cpu().reshape(len(labels), -1)
                if sums is None:
                    sums = torch.zeros(len(counts), features.shape[1], dtype=torch.float64)
                sums.index_add_(0, labels, features)
                counts += torch.bincount(labels, minlength=len(counts))
                done += len(labels)
                bar.update(len(labels))
                if step % checkpoint_every == 0:
                    checkpoint()
    if sums is None or done == 0:
        raise ValueError(f"No images found under {train_root}.")
    class_means = sums / counts[:, None].clamp(min=1)
    class_means[counts == 0] = float("nan")
    result = {
        "mean": sums.sum(0) / counts.sum(),
        "count": int(counts.sum()),
        "class_means": class_means,
        "class_counts": counts,
        "wnids": list(imagenet_names()[0]),
        "meta": meta,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(result, out)
    partial.unlink(missing_ok=True)
    missing = int((counts == 0).sum())
    if missing:
        log.warning("%d ImageNet classes have no images; their class means are nan.", missing)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics.feature_means", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-root", required=True, help="ImageNet train folder with one folder per WordNet id")
    parser.add_argument("--out", required=True, help="output file (.pt); <out>.partial holds progress")
    parser.add_argument("--weights", default=None, help="local copy of torch-fidelity's Inception weights")
    parser.add_argument("--antialias", action="store_true", help="antialiased resize to 299 (must match the SFID metric)")
    parser.add_argument("--size", type=int, default=256, help="Resize + CenterCrop size (FlexIT: 256)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit-per-class", type=int, default=None, help="only the first N images of each class")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="batches between progress checkpoints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = compute_feature_means(
            args.train_root,
            args.out,
            weights=args.weights,
            antialias=args.antialias,
            size=args.size,
            batch_size=args.batch_size,
            workers=args.workers,
            device=args.device,
            limit_per_class=args.limit_per_class,
            checkpoint_every=args.checkpoint_every,
        )
    except (MetricUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {args.out}: {result['count']} images, {int((result['class_counts'] > 0).sum())} classes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
