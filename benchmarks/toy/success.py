"""Edit success on the toy split: is the edit's target what a classifier sees in the edited region?"""

from __future__ import annotations

import os

import torch
from torchvision.transforms.functional import pil_to_tensor

from benchmarks.datasets import EditItem
from benchmarks.toy.model import load_classifier
from benchmarks.toy.render import BACKGROUNDS, COLOURS, SHAPES
from benchmarks.toy.train import object_crops
from instdiffedit.types import EditResult


class EditSuccess:
    """1 when the edited image shows the target, else 0; no column for items of other splits.

    * object edits: the object classifier, on a crop framing the ground-truth region (padded by
      30 % of its size, since a new shape may reach past the old one), must recognise the target
      colour *and* shape;
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
        colour_logits, shape_logits = self.classifier(object_crops(image[None], region[None]))
        colour = list(COLOURS)[colour_logits.argmax()]
        shape = SHAPES[shape_logits.argmax()]
        return {"edit_success": float(colour == item.meta["target_colour"] and shape == item.meta["target_shape"])}
