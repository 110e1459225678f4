"""Moving masks between resolutions: latent maps, the working resolution, the input image."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def resize_mask(mask: torch.Tensor, size: tuple[int, int], mode: Literal["nearest", "bilinear"]) -> torch.Tensor:
    """An h x w map resized to ``size`` (H, W), as float32 on the CPU, values kept in [0, 1].

    "nearest" keeps a binary mask binary; "bilinear" suits soft maps.
    """
    resized = F.interpolate(mask[None, None].float(), size=size, mode=mode)[0, 0]
    return resized.clamp(0, 1).cpu()
