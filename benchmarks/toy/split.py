"""The ``toy_shapes`` edit benchmark: toy scenes with exactly known edit regions.

Each item is one scene from :mod:`benchmarks.toy.render` (one to three objects) and one edit:

* an object edit (``1 - background_share`` of the items): one of the scene's objects, drawn
  uniformly, gets a new colour, a new shape, or both (one of the three, uniformly). Source is
  the object's phrase ("a red circle"), target the new one ("a yellow triangle"); a new colour
  is one no object of the scene has (so colours stay distinct within a scene, as in the
  renderer's scenes), a new shape differs from the old. The ground-truth mask is the object's
  visible mask.
* a background edit (``background_share``, default 20 %): source "on a gray background",
  target "on a brown background" (another background colour); the mask is the background,
  1 minus the union of the objects' masks.

The prompt is the scene's caption. Item ``i`` depends only on ``(seed, i)`` (and on ``size`` for
its resolution, ``background_share`` for which kind of edit it is), never on ``n``: a split of
20 items is the first 20 of a split of 100.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Annotated

import PIL.Image
import torch
from annotated_types import Ge

from benchmarks.data.items import EditDataset, EditItem, register_split
from benchmarks.toy.captions import background_phrase, caption, object_phrase
from benchmarks.toy.render import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    Layout,
    render,
    sample_layouts,
)
from instdiffedit.ranges import Count, UnitInterval, checked_ranges

_COLOUR_NAMES = list(COLOURS)
_BACKGROUND_NAMES = list(BACKGROUNDS)
CHANGES = ("colour", "shape", "both")


@dataclass(frozen=True)
class ToyEdit:
    """One item's scene and edit. ``slot`` is -1 for a background edit; ``colour`` is then the
    new background's index and ``shape`` -1."""

    layout: Layout  # one scene
    kind: str  # "object" or "background"
    change: str  # "colour", "shape", "both" or "background"
    slot: int
    colour: int
    shape: int

    def edited_layout(self) -> Layout:
        """The scene as it should look after the edit."""
        layout = self.layout
        if self.kind == "background":
            return replace(layout, background=torch.tensor([self.colour]))
        colour, shape = layout.colour.clone(), layout.shape.clone()
        colour[0, self.slot], shape[0, self.slot] = self.colour, self.shape
        return replace(layout, colour=colour, shape=shape)


@register_split("Toy shapes")
class ToyShapesSplit(EditDataset):
    """A fixed, seeded list of ``n`` edits of toy scenes with exact masks (see the module)."""

    name = "toy_shapes"
    has_masks = True

    @checked_ranges
    def __init__(self, n: Count = 100, seed: int = 0, size: Annotated[int, Ge(16)] = 64, background_share: UnitInterval = 0.2) -> None:
        self.n, self.seed, self.size, self.background_share = n, seed, size, background_share
        self._edits: dict[int, ToyEdit] = {}

    def item_ids(self) -> list[str]:
        return [f"toy-{i:05d}" for i in range(self.n)]

    def index(self, item_id: str) -> int:
        prefix, _, number = item_id.rpartition("-")
        if prefix != "toy" or not number.isdigit() or int(number) >= self.n or item_id != f"toy-{int(number):05d}":
            raise KeyError(f"{item_id!r} is not an item of the toy_shapes split (n={self.n}).")
        return int(number)

    def edit(self, index: int) -> ToyEdit:
        """Item ``index``'s scene and edit, drawn from ``(seed, index)`` alone."""
        if index not in self._edits:
            self._edits[index] = self._draw(index)
        return self._edits[index]

    def _draw(self, index: int) -> ToyEdit:
        generator = torch.Generator().manual_seed(item_seed(self.seed, index))
        layout = sample_layouts(1, generator)
        # Always the same draws, whichever edit they make.
        kind_u, slot_u, colour_u, shape_u, background_u = torch.rand(5, generator=generator).tolist()
        change = CHANGES[int(torch.randint(len(CHANGES), (1,), generator=generator))]

        def pick(options: list[int], u: float) -> int:
            return options[min(int(u * len(options)), len(options) - 1)]

        if kind_u < self.background_share:
            current = int(layout.background[0])
            others = [b for b in range(len(BACKGROUNDS)) if b != current]
            return ToyEdit(layout, "background", "background", -1, pick(others, background_u), -1)
        present = [k for k, p in enumerate(layout.present[0].tolist()) if p]
        slot = pick(present, slot_u)
        colour, shape = int(layout.colour[0, slot]), int(layout.shape[0, slot])
        if change in ("colour", "both"):
            used = {int(layout.colour[0, k]) for k in present}
            colour = pick([c for c in range(len(COLOURS)) if c not in used], colour_u)
        if change in ("shape", "both"):
            shape = pick([s for s in range(len(SHAPES)) if s != shape], shape_u)
        return ToyEdit(layout, "object", change, slot, colour, shape)

    def load(self, item_id: str) -> EditItem:
        edit = self.edit(self.index(item_id))
        layout = edit.layout
        image, masks = render(layout, self.size)
        if edit.kind == "background":
            gt_mask = 1 - masks[0].any(0).float()
            source = background_phrase(int(layout.background[0]))
            target = background_phrase(edit.colour)
            meta = {
                "edited_slot": "",
                "source_colour": _BACKGROUND_NAMES[int(layout.background[0])],
                "source_shape": "",
                "target_colour": _BACKGROUND_NAMES[edit.colour],
                "target_shape": "",
            }
        else:
            gt_mask = masks[0, edit.slot].float()
            old_colour, old_shape = int(layout.colour[0, edit.slot]), int(layout.shape[0, edit.slot])
            source = object_phrase(old_colour, old_shape)
            target = object_phrase(edit.colour, edit.shape)
            meta = {
                "edited_slot": str(edit.slot),
                "source_colour": _COLOUR_NAMES[old_colour],
                "source_shape": SHAPES[old_shape],
                "target_colour": _COLOUR_NAMES[edit.colour],
                "target_shape": SHAPES[edit.shape],
            }
        meta = {
            "edit_kind": edit.kind,
            "change": edit.change,
            **meta,
            "num_objects": str(int(layout.num_objects[0])),
            "target_prompt": caption(edit.edited_layout(), 0),
        }
        return EditItem(
            id=item_id,
            image=_to_pil(image[0]),
            target=target,
            source=source,
            prompt=caption(layout, 0),
            gt_mask=gt_mask,
            meta=meta,
        )

    def expected_image(self, item_id: str) -> PIL.Image.Image:
        """The exact edited scene: the same layout with the edit applied, rendered.

        An object keeps its place, size and rotation; a new shape may cover pixels outside the
        old object's mask (and uncover others), so it differs from ``gt_mask`` there.
        """
        image, _ = render(self.edit(self.index(item_id)).edited_layout(), self.size)
        return _to_pil(image[0])

    def mean_object_area(self) -> float:
        """The mean visible area, in pixels, of all objects of all the split's scenes."""
        layout = Layout.cat([self.edit(i).layout for i in range(self.n)])
        _, masks = render(layout, self.size)
        return float(masks.sum((2, 3))[layout.present].float().mean())

    def reference_masks(self) -> dict[str, torch.Tensor]:
        """Two trivial masks (S x S float) for reference rows: "disc", a centred disc of the
        split's mean object area, and "full", the whole image."""
        radius = math.sqrt(self.mean_object_area() / math.pi)
        centres = torch.arange(self.size, dtype=torch.float32) + 0.5 - self.size / 2
        disc = (centres[:, None] ** 2 + centres[None, :] ** 2 <= radius**2).float()
        return {"disc": disc, "full": torch.ones(self.size, self.size)}


def item_seed(seed: int, index: int) -> int:
    """A 32-bit generator seed for item ``index`` of split ``seed``.

    Torch's CPU generator keeps only the low 32 bits of a seed, so ``seed`` and ``index`` are
    hashed together rather than packed side by side.
    """
    digest = hashlib.sha256(f"toy_shapes:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _to_pil(image: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray((image.permute(1, 2, 0) * 255).round().byte().cpu().numpy())
