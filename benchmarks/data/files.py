"""A split's input files: opened as every split opens them, and checked up front.

Every split looks up the files its items need when it is built, before any model loads, and a
missing one is a :class:`MissingFilesError` naming the file, the config key and what the folder
must hold. A split that reads user-supplied files (a manifest, the PIE-Bench mapping file) checks
all of them and collects every problem with its place (a line of the manifest, an item id) in
:class:`Problems`, so that one run shows the user everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class MissingFilesError(RuntimeError):
    """Items of a split have no file; the message lists them and what was found."""


def open_rgb(path: Path) -> PIL.Image.Image:
    """The image at ``path`` as RGB, in memory (the file closed)."""
    with PIL.Image.open(path) as image:
        return image.convert("RGB")


def open_mask(path: Path, size: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
    """A binary mask (H x W float) for an image of ``size`` (W, H), and flags for what was off."""
    flags = []
    with PIL.Image.open(path) as mask:
        mask = mask.convert("L")
        if mask.size != size:
            flags.append(f"mask {mask.size[0]}x{mask.size[1]} resized (nearest) to the image's {size[0]}x{size[1]}")
            mask = mask.resize(size, PIL.Image.Resampling.NEAREST)
        binary = torch.from_numpy(np.array(mask) > 127).float()
    if binary.sum() == 0:
        flags.append("empty ground-truth mask: IoU undefined")
    return binary, flags


class SplitInputError(MissingFilesError):
    """A split's files are missing or invalid; the message lists every problem with its place.

    A subclass of :class:`MissingFilesError` so that the harness reports it as it reports
    missing files: the message alone, no traceback, before any model loads.
    """


@dataclass
class Problems:
    """Problems found while validating a split's input, each with where it is."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, problem: str) -> None:
        self.items.append((where, problem))

    def raise_if_any(self, what: str, fix: str) -> None:
        """Raise :class:`SplitInputError` listing every problem, if there is any.

        ``what`` names the input ("the manifest /data/items.csv"), ``fix`` says what to do.
        """
        if not self.items:
            return
        lines = "\n".join(f"  {where}: {problem}" for where, problem in self.items)
        raise SplitInputError(f"{len(self.items)} problem(s) in {what}:\n{lines}\n{fix}")
