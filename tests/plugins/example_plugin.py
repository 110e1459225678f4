"""A plugin from outside the project: one method, one backbone family, one metric and one split.

Run with it (from the repository root, the plugin's folder on the Python path):

    PYTHONPATH=tests/plugins python run.py plugins=[example_plugin] hydra.searchpath=[file://tests/plugins/conf] \
        model=example_tiny method=example_sdedit dataset=example_squares metrics=example logger=none

Importing this module registers all four; its configs are ``conf/<group>/<name>.yaml`` beside it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import PIL.Image
import torch
from diffusers import StableDiffusionPipeline

from baselines import SDEdit
from benchmarks.data.items import EditDataset, EditItem, register_split
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.metrics.per_item import ItemMetric, pair_tensors
from benchmarks.models.loading import Pipelines
from benchmarks.models.tiny import tiny_pipelines
from instdiffedit.backbones import StableDiffusion, register_backbone
from instdiffedit.registry import register_method


class ExampleSDPipeline(StableDiffusionPipeline):
    """SD 1.x under another name: the pipeline class the example family's backbone runs over."""


@register_backbone(ExampleSDPipeline, name="Example SD")
class ExampleSD(StableDiffusion):
    """The example family: SD 1.x's backbone as it is, declared as a family of its own."""

    family = "example_sd"


def example_tiny_pipelines(cache_dir: str | None = None, *, family: str = ExampleSD.family, device: str = "auto") -> Pipelines:
    """The tiny SD model's components in the example family's pipeline (no inpainting twin)."""
    if family != ExampleSD.family:
        raise ValueError(f"model.family={family!r}, but this loader builds the {ExampleSD.family} family; set model.family={ExampleSD.family}.")
    tiny = tiny_pipelines(cache_dir, device=device, inpaint=False)
    base = ExampleSDPipeline(**tiny.base.components)
    base.set_progress_bar_config(disable=True)
    return Pipelines(base=base, inpaint=None)


@register_method("example_sdedit", role="baseline", quick=("method.num_inference_steps=4",))
class ExampleSDEdit(SDEdit):
    """SDEdit, declared as a method of its own that also runs on the example family."""

    capabilities = replace(SDEdit.capabilities, families=SDEdit.capabilities.families | {"example_sd"})


@register_metric(Column("changed_share", "changed pixels (%)", ".1f", note="share of pixels whose colour moved by more than 0.1."))
class ChangedShare(ItemMetric):
    """``changed_share``: % of pixels whose largest channel change exceeds 0.1 (colours in [0, 1])."""

    def __call__(self, item, result) -> dict[str, float]:
        source, edited = pair_tensors(item, result)
        changed = (edited - source).abs().amax(dim=0) > 0.1
        return {"changed_share": 100.0 * changed.float().mean().item() if changed.numel() else math.nan}


@register_split("Example squares", columns=("changed_share", "mask_iou", "seconds"))
class ExampleSquares(EditDataset):
    """``n`` grey images of ``size`` px, each with a white square (item i's at offset i) to turn red; its mask is the square."""

    name = "example_squares"
    has_masks = True

    def __init__(self, n: int = 2, size: int = 64) -> None:
        if n < 1 or size < 4 * n:
            raise ValueError(f"ExampleSquares needs n >= 1 and size >= 4n, got n={n}, size={size}.")
        self.n, self.size = n, size

    def item_ids(self) -> list[str]:
        return [f"square-{i}" for i in range(self.n)]

    def load(self, item_id: str) -> EditItem:
        if item_id not in self.item_ids():
            raise KeyError(f"{item_id!r} is not an item of the example_squares split (n={self.n}).")
        offset, side = int(item_id.split("-")[1]), self.size // 2
        mask = torch.zeros(self.size, self.size)
        mask[offset : offset + side, offset : offset + side] = 1
        pixels = (0.5 + 0.5 * mask).expand(3, -1, -1)
        image = PIL.Image.fromarray((pixels.permute(1, 2, 0) * 255).round().byte().numpy())
        return EditItem(id=item_id, image=image, target="a red square", source="a white square", gt_mask=mask)
