"""The synthetic split: generated images of one coloured shape with its exact mask; needs no files."""

from __future__ import annotations

from typing import Annotated

import PIL.Image
import torch
from annotated_types import Ge

from benchmarks.data.colours import COLOURS
from benchmarks.data.items import EditDataset, EditItem, register_split
from instdiffedit.ranges import Count, checked_ranges

_SHAPES = ("circle", "square")  # single CLIP tokens, as the colours


@register_split("Synthetic shapes")
class SyntheticDataset(EditDataset):
    """N generated images, each with one coloured shape on a smooth background, and its exact mask.

    Needs no files, so the runner runs anywhere. Item ``i`` depends only on ``(seed, i)``.
    The edit replaces the shape by another colour and shape: source "a red circle", target
    "a blue square", and the ground-truth mask is the shape's pixels.
    """

    name = "synthetic"
    has_masks = True

    @checked_ranges
    def __init__(self, n: Count = 8, size: Annotated[int, Ge(16)] = 128, seed: int = 0) -> None:
        self.n, self.size, self.seed = n, size, seed

    def item_ids(self) -> list[str]:
        return [f"synthetic-{i:05d}" for i in range(self.n)]

    def load(self, item_id: str) -> EditItem:
        if item_id not in self.item_ids():
            raise KeyError(f"{item_id!r} is not an item of the synthetic split (n={self.n}).")
        index = int(item_id.rsplit("-", 1)[1])
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        pick = lambda options: options[int(torch.randint(len(options), (1,), generator=gen))]  # noqa: E731
        colour, shape = pick(list(COLOURS)), pick(_SHAPES)
        target_colour = pick([c for c in COLOURS if c != colour])
        target_shape = pick(_SHAPES)

        s = self.size
        yy, xx = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
        radius = s * (0.15 + 0.15 * torch.rand((), generator=gen))
        cy, cx = (radius + (s - 2 * radius) * torch.rand(2, generator=gen)).unbind()
        if shape == "circle":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        else:
            mask = ((yy - cy).abs() <= radius) & ((xx - cx).abs() <= radius)

        top, bottom = torch.rand(2, 3, generator=gen) * 0.5 + 0.25
        ramp = (yy / s)[None]
        background = top[:, None, None] * (1 - ramp) + bottom[:, None, None] * ramp
        pixels = torch.where(mask, torch.tensor(COLOURS[colour])[:, None, None], background)
        image = PIL.Image.fromarray((pixels.permute(1, 2, 0) * 255).round().byte().numpy())
        return EditItem(
            id=item_id,
            image=image,
            target=f"a {target_colour} {target_shape}",
            source=f"a {colour} {shape}",
            prompt=f"a {colour} {shape} on a plain background",
            gt_mask=mask.float(),
        )
