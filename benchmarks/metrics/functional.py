"""Pure functions over images as tensors: mask IoU, changing rate, MSE and PSNR over a region, SSIM
outside a mask, and the conversions and FlexIT preprocessing the metrics share.

Images are float tensors in [0, 1] of shape 3 x H x W; masks are H x W with 1 = edit region.
``nan`` marks a value that is undefined for the input (never a made-up 0).
"""

from __future__ import annotations

import math

import PIL.Image
import torch
from torchvision.transforms import functional as TF


def mask_iou(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Intersection over union of two binary masks of the same shape; nan when both are empty."""
    if predicted.shape != truth.shape:
        raise ValueError(f"Mask shapes differ: predicted {tuple(predicted.shape)}, ground truth {tuple(truth.shape)}.")
    predicted, truth = predicted.bool(), truth.bool()
    union = (predicted | truth).sum().item()
    return (predicted & truth).sum().item() / union if union else math.nan


def _check_pair(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    if source.dim() != 3 or source.shape != edited.shape:
        raise ValueError(
            f"Expected two images of the same shape 3 x H x W, got {tuple(source.shape)} and {tuple(edited.shape)}."
        )
    if mask is not None and mask.shape != source.shape[1:]:
        raise ValueError(f"Mask shape {tuple(mask.shape)} differs from the image size {tuple(source.shape[1:])}.")


def changing_rate(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> float:
    """How much more the image changed inside the ground-truth mask than outside it.

    Definition (ours; the InstDiffEdit paper reports a "changing rate" without a formula):
    the mean absolute pixel change ``|edited - source|`` over the pixels inside the mask (all
    channels), divided by the mean absolute pixel change over the pixels outside it. Higher
    means more local editing; 1 means the change is spread evenly.

    ``source`` and ``edited`` are 3 x H x W in [0, 1]; ``mask`` is H x W, inside where > 0.5.
    nan when the mask is empty or covers the whole image, or nothing changed outside it.
    """
    _check_pair(source, edited, mask)
    inside = mask > 0.5
    if not inside.any() or inside.all():
        return math.nan
    change = (edited.double() - source.double()).abs()
    outside_change = change[:, ~inside].mean().item()
    if outside_change == 0:
        return math.nan
    return change[:, inside].mean().item() / outside_change


def mse(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Mean squared error over all channels of the pixels where ``region == 1`` (all pixels when None).

    nan when the region is empty.
    """
    _check_pair(source, edited, region)
    squared = (edited.double() - source.double()) ** 2
    if region is not None:
        selected = region > 0.5
        if not selected.any():
            return math.nan
        squared = squared[:, selected]
    return squared.mean().item()


def psnr(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, over the region (see :func:`mse`).

    ``inf`` for identical pixels; nan when the region is empty.
    """
    error = mse(source, edited, region)
    if math.isnan(error):
        return math.nan
    return math.inf if error == 0 else 10.0 * math.log10(data_range**2 / error)


def ssim_outside(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM of the two images with the mask region blanked (set to 0) in both, as PIE-Bench does.

    Uses torchmetrics' functional SSIM (Gaussian window 11, sigma 1.5, data range 1). The
    blanked pixels are equal in both images, so the value measures the background, but windows
    straddling the mask edge still see it. nan when the mask covers the whole image or the
    image is smaller than the 11-pixel window.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(source, edited, mask)
    keep = (mask <= 0.5).to(source.dtype)
    if not keep.any() or min(source.shape[1:]) < 11:
        return math.nan
    value = structural_similarity_index_measure(
        (edited * keep)[None].float(), (source * keep)[None].float(), data_range=1.0
    )
    return float(value)


def image_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a float RGB tensor 3 x H x W in [0, 1]."""
    return TF.pil_to_tensor(image.convert("RGB")).float() / 255.0


def image_to_uint8(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 RGB tensor 3 x H x W."""
    return TF.pil_to_tensor(image.convert("RGB"))


def flexit_resize(image: PIL.Image.Image, size: int = 256) -> PIL.Image.Image:
    """FlexIT's evaluation preprocessing: Resize(size) of the short side, then CenterCrop(size)."""
    return TF.center_crop(TF.resize(image.convert("RGB"), size), [size, size])
