"""The toy world's object classifier: colour and shape of what a mask frames, in one batched call.

It scores the toy generators' samples while they train and gives the toy split its
``edit_success`` metric (:mod:`benchmarks.toy.success`); the trained weights ship in
``models/toy/classifier`` (:func:`benchmarks.toy.model.load_classifier`).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from benchmarks.toy.render import COLOURS, SHAPES


class ObjectClassifier(nn.Module):
    """Colour (6) and shape (4) of the object in a 32 x 32 crop: a small CNN with two heads."""

    def __init__(self) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.colour = nn.Linear(128, len(COLOURS))
        self.shape = nn.Linear(128, len(SHAPES))

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(crops * 2 - 1)
        return self.colour(features), self.shape(features)


def object_crops(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None, pad: float = 0.3) -> torch.Tensor:
    """32 x 32 crops (bilinear, ``roi_align``) of the square around each mask's bounding box,
    padded by ``pad`` of its side (random in [0, pad] with a generator) and kept inside the
    image; an empty mask gives the whole image. All crops in one call: no per-crop host work.
    """
    n, _, height, width = images.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    empty = ~rows.any(dim=1)
    y0 = rows.float().argmax(dim=1)
    y1 = height - rows.flip(1).float().argmax(dim=1)
    x0 = cols.float().argmax(dim=1)
    x1 = width - cols.flip(1).float().argmax(dim=1)
    share = torch.full((n,), pad) if generator is None else pad * torch.rand(n, generator=generator)
    side = torch.maximum(y1 - y0, x1 - x0).float() * (1 + 2 * share.to(images.device))
    cy, cx = (y0 + y1).float() / 2, (x0 + x1).float() / 2
    boxes = torch.stack(
        [(cx - side / 2).clamp(min=0), (cy - side / 2).clamp(min=0), (cx + side / 2).clamp(max=width), (cy + side / 2).clamp(max=height)], dim=1
    )
    whole = torch.tensor([0.0, 0.0, width, height], device=images.device)
    boxes = torch.where(empty[:, None], whole, boxes)
    indices = torch.arange(n, device=images.device, dtype=boxes.dtype)[:, None]
    return roi_align(images, torch.cat([indices, boxes], dim=1), output_size=32, aligned=True)
