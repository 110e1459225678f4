"""Edit success on the toy split: is the edit's target what a classifier sees in the edited region?"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import ndimage
from torchvision.transforms.functional import pil_to_tensor

from benchmarks.data.items import EditItem
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.metrics.per_item import ItemMetric
from benchmarks.toy.classifier import object_crops
from benchmarks.toy.model import load_classifier
from benchmarks.toy.render import BACKGROUNDS, COLOURS, SHAPES
from instdiffedit.types import EditResult


@register_metric(
    Column(
        "edit_success",
        "edit_success",
        note="toy split: share of edits whose target (colour and shape, or background colour) is recognised in the edited region.",
    )
)
class EditSuccess(ItemMetric):
    """1 when the edited image shows the target, else 0; no column for items of other splits.

    * object edits: the object classifier must recognise the target colour *and* shape in a crop
      framing what now stands where the object stood: the pixels away from the background
      colour within the ground-truth region's box, widened by half its size (a new shape has
      another footprint than the old one: a circle is smaller than the star it replaces);
    * background edits: the median colour of the ground-truth region (the background) must be
      nearer the target background colour than any other background colour.
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.classifier = load_classifier(folder)
        self.backgrounds = torch.tensor(list(BACKGROUNDS.values()), dtype=torch.float32)

    @torch.no_grad()
    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        kind = item.meta.get("edit_kind")
        if kind is None or item.gt_mask is None:
            return {}
        image = pil_to_tensor(result.image.convert("RGB")).float() / 255
        region = item.gt_mask.bool()
        if image.shape[-2:] != region.shape:
            raise ValueError(f"Item {item.id}: edited image {tuple(image.shape[-2:])} and mask {tuple(region.shape)} differ in size.")
        if kind == "background":
            median = image[:, region].median(dim=1).values
            nearest = (self.backgrounds - median).norm(dim=1).argmin()
            return {"edit_success": float(list(BACKGROUNDS)[nearest] == item.meta["target_colour"])}
        found = _new_object(image, region)
        if not found.any():  # nothing but background where the object was
            return {"edit_success": 0.0}
        colour_logits, shape_logits = self.classifier(object_crops(image[None], found[None]))
        colour = list(COLOURS)[colour_logits.argmax()]
        shape = SHAPES[shape_logits.argmax()]
        return {"edit_success": float(colour == item.meta["target_colour"] and shape == item.meta["target_shape"])}


def _new_object(image: torch.Tensor, region: torch.Tensor, widen: float = 0.5, away: float = 0.2) -> torch.Tensor:
    """Pixels of ``image`` (3 x H x W) unlike its background, within ``region``'s box widened by ``widen``
    of its size, in connected parts that touch ``region`` (so a neighbouring object reaching into
    the box is left out). The background colour is the median outside the box (the whole image's
    if the box covers it).
    """
    ys, xs = torch.nonzero(region, as_tuple=True)
    height, width = region.shape
    dy, dx = widen * (ys.max() - ys.min() + 1) / 2, widen * (xs.max() - xs.min() + 1) / 2
    box = torch.zeros_like(region)
    box[int(max(0, ys.min() - dy)) : int(min(height, ys.max() + 1 + dy)), int(max(0, xs.min() - dx)) : int(min(width, xs.max() + 1 + dx))] = True
    outside = image[:, ~box] if (~box).any() else image.flatten(1)
    background = outside.median(dim=1).values
    candidates = box & ((image - background[:, None, None]).abs().amax(0) > away)
    parts, _ = ndimage.label(candidates.numpy())
    touching = torch.from_numpy(parts)[region & candidates].unique()
    return torch.from_numpy(np.isin(parts, touching[touching > 0].numpy()))
