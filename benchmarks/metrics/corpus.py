"""Corpus metrics: FID and FlexIT's SFID/CSFID need every item of a run at once.

``metric.compute(pairs)`` takes ``(item, edited image)`` pairs, normally read back from the
images a run saved (:meth:`benchmarks.run.folder.ItemImages.saved_pairs`), so they are computed once at
the end of a run and cover resumed runs too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import PIL.Image
import torch
from torch import nn

from benchmarks.data.items import EditItem
from benchmarks.devices import resolve_device
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.metrics.functional import flexit_resize, image_to_uint8
from benchmarks.metrics.imagenet_classes import imagenet_class_index, imagenet_names
from benchmarks.metrics.weights import (
    inception_description,
    load_inception,
    unavailable,
)

log = logging.getLogger(__name__)


class CorpusMetric(Protocol):
    """A metric over a whole run (FID, SFID/CSFID): (item, edited image) pairs -> named values."""

    def compute(self, pairs: Iterable[tuple[EditItem, PIL.Image.Image]]) -> dict[str, float]: ...


Pairs = Iterable[tuple[EditItem, PIL.Image.Image]]


def _batches(tensors: Iterable[tuple[torch.Tensor, Any]], batch_size: int) -> Iterator[tuple[torch.Tensor, list[Any]]]:
    """Stacks of consecutive same-shaped tensors (at most ``batch_size``), with their tags."""
    batch: list[torch.Tensor] = []
    tags: list[Any] = []
    for tensor, tag in tensors:
        if batch and (len(batch) == batch_size or tensor.shape != batch[0].shape):
            yield torch.stack(batch), tags
            batch, tags = [], []
        batch.append(tensor)
        tags.append(tag)
    if batch:
        yield torch.stack(batch), tags


@register_metric(Column("fid", "FID", ".1f"))
class FID:
    """``fid``: Fréchet Inception Distance of the edited images to the input images (torchmetrics).

    torchmetrics' ``FrechetInceptionDistance`` on the 2048-d pool features of the FID Inception
    v3 (torch-fidelity weights, or ``weights``), images at their own size resized to 299 inside
    (``antialias=False``: like TensorFlow's FID code). ``feature`` injects any module mapping
    uint8 N x 3 x H x W images to N x D features. Also reports ``fid_items``. nan with fewer
    than 2 items.
    """

    def __init__(
        self,
        weights: str | None = None,
        feature: nn.Module | None = None,
        antialias: bool = False,
        batch_size: int = 32,
        device: str = "cpu",
        config_key: str = "metrics.corpus.fid",
    ) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if feature is None:
            feature = load_inception(weights, antialias=antialias, key=f"{config_key}.weights", off=f"~{config_key}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.metric = FrechetInceptionDistance(feature=feature, normalize=False).to(self.device)

    def compute(self, pairs: Pairs) -> dict[str, float]:
        self.metric.reset()
        real: list[tuple[torch.Tensor, None]] = []
        fake: list[tuple[torch.Tensor, None]] = []

        def flush(images: list[tuple[torch.Tensor, None]], is_real: bool) -> None:
            for batch, _ in _batches(images, self.batch_size):
                self.metric.update(batch.to(self.device), real=is_real)
            images.clear()

        count = 0
        with torch.no_grad():
            for item, edited in pairs:
                real.append((image_to_uint8(item.image), None))
                fake.append((image_to_uint8(edited), None))
                count += 1
                if len(real) >= self.batch_size:
                    flush(real, True)
                    flush(fake, False)
            flush(real, True)
            flush(fake, False)
            value = float(self.metric.compute()) if count >= 2 else math.nan
        return {"fid": value, "fid_items": float(count)}


def load_feature_means(path: str | Path) -> dict[str, Any]:
    """The ImageNet-train mean features written by ``python -m benchmarks.metrics.feature_means``."""
    return torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)


@register_metric(Column("csfid", "CSFID", ".1f"), Column("sfid", "SFID", ".1f"))
class SFID:
    """FlexIT's ``sfid`` and ``csfid``: squared L2 between mean Inception features of edited images and ImageNet-train means.

    Each edited image goes through Resize(256) + CenterCrop(256) (FlexIT) and the FID
    Inception v3 (2048-d pool features). ``sfid`` = ||mean over all edited images - mean over
    ImageNet train||^2; ``csfid`` = the mean, over the target classes of the run's items, of
    ||mean over the edited images of class c - mean over ImageNet train images of class c||^2.
    The item's target class is ``meta["target_class"]``; ``csfid`` is nan when an item has none.
    Also reports ``sfid_items`` and ``csfid_classes``.

    ``means`` is the file written by ``python -m benchmarks.metrics.feature_means``; it records how its
    features were made, and must match this metric's extractor. ``feature`` injects one.
    """

    def __init__(
        self,
        means: str | None = None,
        weights: str | None = None,
        feature: nn.Module | None = None,
        antialias: bool = False,
        size: int = 256,
        batch_size: int = 32,
        device: str = "cpu",
        config_key: str = "metrics.corpus.sfid",
    ) -> None:
        off = f"~{config_key}"
        what = "SFID/CSFID need the mean Inception features of ImageNet train (computed once with `python -m benchmarks.metrics.feature_means --train-root /path/to/ILSVRC2012/train --out means.pt`)"
        if means is None:
            raise unavailable(what + ", and", f"{config_key}.means is not set", f"{config_key}.means", off, "/path/to/means.pt")
        if not Path(means).expanduser().is_file():
            raise unavailable(what + ", and", f"{means} is not a file", f"{config_key}.means", off, "/path/to/means.pt")
        self.means = load_feature_means(means)
        if feature is None:
            feature = load_inception(weights, antialias=antialias, key=f"{config_key}.weights", off=off)
            description = inception_description(antialias)
        else:
            description = f"custom {type(feature).__name__}"
        stored = self.means.get("meta", {}).get("extractor")
        if stored != description or self.means.get("meta", {}).get("size") != size:
            raise ValueError(
                f"The means file {means} holds features of '{stored}' at size {self.means.get('meta', {}).get('size')}, "
                f"but this metric uses '{description}' at size {size}; recompute the means with the same settings."
            )
        self.device = resolve_device(device)
        self.feature = feature.to(self.device).eval()
        self.size = size
        self.batch_size = batch_size

    def compute(self, pairs: Pairs) -> dict[str, float]:
        total: torch.Tensor | None = None
        count = 0
        class_sums: dict[int, torch.Tensor] = {}
        class_counts: dict[int, int] = {}
        every_item_has_class = True

        def tagged() -> Iterator[tuple[torch.Tensor, int | None]]:
            nonlocal every_item_has_class
            for item, edited in pairs:
                name = item.meta.get("target_class")
                every_item_has_class &= name is not None
                yield image_to_uint8(flexit_resize(edited, self.size)), None if name is None else imagenet_class_index(name)

        with torch.no_grad():
            for batch, labels in _batches(tagged(), self.batch_size):
                features = self.feature(batch.to(self.device)).double().cpu().reshape(len(labels), -1)
                total = features.sum(0) if total is None else total + features.sum(0)
                count += len(labels)
                for row, label in zip(features, labels):
                    if label is not None:
                        class_sums[label] = class_sums.get(label, 0) + row
                        class_counts[label] = class_counts.get(label, 0) + 1
        if count == 0:
            return {"sfid": math.nan, "csfid": math.nan, "sfid_items": 0.0, "csfid_classes": 0.0}
        sfid = float(((total / count) - self.means["mean"].double()).pow(2).sum())
        csfid = math.nan
        if every_item_has_class:
            distances = []
            for label, summed in class_sums.items():
                if int(self.means["class_counts"][label]) == 0:
                    raise ValueError(
                        f"The ImageNet means file has no images of class {imagenet_names()[0][label]} "
                        f"({imagenet_names()[1][label]}), a target class of this run."
                    )
                reference = self.means["class_means"][label].double()
                distances.append(((summed / class_counts[label]) - reference).pow(2).sum())
            csfid = float(torch.stack(distances).mean())
        else:
            log.warning("CSFID is undefined: some items have no meta['target_class'].")
        return {"sfid": sfid, "csfid": csfid, "sfid_items": float(count), "csfid_classes": float(len(class_sums))}
