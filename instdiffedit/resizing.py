"""Moving images and masks between the input's size and a method's square working size.

Every method works at a square resolution (512 px for SD 1.4; the input is resized, never
cropped, as the paper does) and returns its image and masks at the input's size.
"""

from __future__ import annotations

from typing import Literal

import PIL.Image
import torch
import torch.nn.functional as F

from instdiffedit.arithmetic import Arithmetic, check_arithmetic, pil_bicubic_resize


def resize_mask(mask: torch.Tensor, size: tuple[int, int], mode: Literal["nearest", "bilinear"]) -> torch.Tensor:
    """An h x w map resized to ``size`` (H, W), as float32 on the CPU, values kept in [0, 1].

    "nearest" keeps a binary mask binary; "bilinear" suits soft maps.
    """
    resized = F.interpolate(mask[None, None].float(), size=size, mode=mode)[0, 0]
    return resized.clamp(0, 1).cpu()


def binary_mask_to_size(mask: torch.Tensor, size: tuple[int, int], arithmetic: Arithmetic) -> torch.Tensor:
    """A binary h x w mask resized to ``size`` (H, W), binary (float32), on the mask's device.

    "authors": as the authors hand their 64 x 64 mask to SD-inpainting: the 0/255 image resized
    with PIL's bicubic, then binarised at 0.5 as the inpainting pipeline does (levels >= 128).
    "float": nearest.
    """
    check_arithmetic(arithmetic)
    if arithmetic == "float":
        return F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
    return (pil_bicubic_resize((mask > 0.5).float() * 255, size) >= 128).float()


def to_working_size(image: PIL.Image.Image, side: int) -> PIL.Image.Image:
    """The input as an RGB ``side`` x ``side`` image (bicubic, no crop)."""
    return image.convert("RGB").resize((side, side), PIL.Image.Resampling.BICUBIC)


def to_input_size(
    image: PIL.Image.Image,
    edited: PIL.Image.Image,
    mask: torch.Tensor | None = None,
    soft_mask: torch.Tensor | None = None,
) -> tuple[PIL.Image.Image, torch.Tensor | None, torch.Tensor | None]:
    """``edited`` and the masks (any resolution) at ``image``'s size: bicubic, nearest, bilinear."""
    size = (image.height, image.width)
    return (
        edited.resize(image.size, PIL.Image.Resampling.BICUBIC),
        None if mask is None else resize_mask(mask, size, "nearest"),
        None if soft_mask is None else resize_mask(soft_mask, size, "bilinear"),
    )
