"""Random inpainting masks for training, as SD-inpainting's were drawn, plus the toy world's own regions.

Kinds, per scene:

* ``box``: an axis-aligned rectangle, each side 15-80 % of the image's;
* ``blob``: a smooth random region (low-resolution noise, upsampled and thresholded);
* ``object``: one present object's visible mask, dilated by 0-4 px (the region of an object edit);
* ``background``: everything but the objects (the region of a background edit);
* ``whole``: the whole image (SD-inpainting's share of fully masked images, so that the twin
  also generates from text alone).

Everything is drawn on the masks' device with the default generator and no host sync, so the
draw can sit inside a captured CUDA graph (every replay draws anew).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

MASK_KINDS = ("box", "blob", "object", "background", "whole")
DEFAULT_MASK_SHARES: dict[str, float] = {"box": 0.2, "blob": 0.2, "object": 0.3, "background": 0.15, "whole": 0.15}
_MAX_DILATION = 4  # px, for object masks
_BLOB_GRID = 5  # the blobs' noise resolution: a few lobes per image


class MaskSampler:
    """Draws :data:`MASK_KINDS` masks with the given shares (normalised); see the module.

    The shares become a device tensor here, once: inside a graph capture no tensor may be made from host values.
    """

    def __init__(self, shares: Mapping[str, float] = DEFAULT_MASK_SHARES, device: torch.device | str = "cpu") -> None:
        unknown = set(shares) - set(MASK_KINDS)
        if unknown:
            raise ValueError(f"Unknown mask kinds {sorted(unknown)}; known: {', '.join(MASK_KINDS)}.")
        weights = torch.tensor([float(shares.get(kind, 0.0)) for kind in MASK_KINDS])
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"Mask shares must be non-negative and not all zero, got {dict(shares)}.")
        self.edges = (weights.cumsum(0) / weights.sum())[:-1].to(device)

    def kinds(self, n: int) -> torch.Tensor:
        """(n,) long indices of ``MASK_KINDS``, by inverse CDF (torch.multinomial is not graph-safe on every version)."""
        return (torch.rand(n, 1, device=self.edges.device) >= self.edges).sum(1)

    def __call__(self, objects: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) float masks in {0, 1} (1 = repaint) for scenes with instance masks ``objects`` (N, K, H, W) bool.

        A scene without objects gets the whole image for the object kind.
        """
        n, _, height, width = objects.shape
        device = objects.device
        kind = self.kinds(n)
        ys = (torch.arange(height, device=device) + 0.5) / height
        xs = (torch.arange(width, device=device) + 0.5) / width

        size = 0.15 + 0.65 * torch.rand(n, 2, device=device)  # (height, width) shares
        corner = (1 - size) * torch.rand(n, 2, device=device)
        box = (
            (ys[None, :, None] >= corner[:, 0, None, None])
            & (ys[None, :, None] < (corner[:, 0] + size[:, 0])[:, None, None])
            & (xs[None, None, :] >= corner[:, 1, None, None])
            & (xs[None, None, :] < (corner[:, 1] + size[:, 1])[:, None, None])
        )

        noise = F.interpolate(torch.randn(n, 1, _BLOB_GRID, _BLOB_GRID, device=device), size=(height, width), mode="bicubic", align_corners=False)
        blob = noise[:, 0] > (1.2 * torch.rand(n, device=device) - 0.2)[:, None, None]

        present = objects.flatten(2).any(2)  # (N, K)
        count = present.sum(1)
        pick = (torch.rand(n, device=device) * count).long()  # the pick-th present slot
        chosen = present & (present.long().cumsum(1) - 1 == pick[:, None])
        single = (objects & chosen[:, :, None, None]).any(1, keepdim=True).float()
        dilation = torch.randint(0, _MAX_DILATION + 1, (n,), device=device)
        dilated = torch.stack([F.max_pool2d(single, 2 * r + 1, 1, r)[:, 0] for r in range(_MAX_DILATION + 1)], 1)
        obj = dilated.gather(1, dilation[:, None, None, None].expand(n, 1, height, width))[:, 0] > 0.5
        obj = obj | (count == 0)[:, None, None]

        background = ~objects.any(1)
        whole = torch.ones_like(background)
        choices = torch.stack([box, blob, obj, background, whole], 1)  # order of MASK_KINDS
        return choices.gather(1, kind[:, None, None, None].expand(n, 1, height, width)).float()
