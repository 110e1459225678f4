"""Pure functions over images as tensors: mask IoU, changing rate, MSE and PSNR over a region, SSIM
outside a mask, and the conversions and FlexIT preprocessing the metrics share.

Images are float tensors in [0, 1] of shape 3 x H x W; masks are H x W with 1 = edit region.
``nan`` marks a value that is undefined for the input (never a made-up 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

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
        raise ValueError(f"Expected two images of the same shape 3 x H x W, got {tuple(source.shape)} and {tuple(edited.shape)}.")
    if mask is not None and mask.shape != source.shape[1:]:
        raise ValueError(f"Mask shape {tuple(mask.shape)} differs from the image size {tuple(source.shape[1:])}.")


TILE_PIXELS = 1 << 20
"""Pixels per band of rows a metric holds at once: per-pixel metrics go over an image a band at a
time and sum, so their memory is bounded whatever the image's size and their values are those of
the whole image (up to the order of float64 sums)."""
WHOLE_SSIM_PIXELS = 1024 * 1024
"""Images up to this size get SSIM in one call (as always); larger ones band by band (:func:`ssim_outside`)."""
SSIM_TILE_PIXELS = 1 << 17
"""Pixels per band of SSIM: torchmetrics' SSIM holds about 30 times its input's bytes while it
runs (700 MB for a megapixel), so its bands are smaller than the other metrics'."""


def row_bands(height: int, width: int, min_rows: int = 1, pixels: int | None = None) -> Iterator[slice]:
    """Slices of whole rows covering ``height`` rows, each of about ``pixels`` pixels (default
    :data:`TILE_PIXELS`) and at least ``min_rows`` rows."""
    rows = max(min_rows, (pixels or TILE_PIXELS) // max(width, 1))
    for top in range(0, height, rows):
        yield slice(top, min(top + rows, height))


def _banded_sum(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None, value: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, int]:
    """The float64 sum of ``value(edited - source)`` over every channel of the pixels in ``region``
    (all when None), and how many values that is; one band of rows at a time."""
    total, count = 0.0, 0
    for rows in row_bands(*source.shape[1:]):
        values = value(edited[:, rows].double() - source[:, rows].double())
        if region is not None:
            values = values[:, region[rows]]
        total += values.sum().item()
        count += values.numel()
    return total, count


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
    inside_change, inside_count = _banded_sum(source, edited, inside, torch.abs)
    outside_change, outside_count = _banded_sum(source, edited, ~inside, torch.abs)
    if outside_change == 0:
        return math.nan
    return (inside_change / inside_count) / (outside_change / outside_count)


def mse(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Mean squared error over all channels of the pixels where ``region == 1`` (all pixels when None).

    nan when the region is empty.
    """
    _check_pair(source, edited, region)
    selected = None if region is None else region > 0.5
    if selected is not None and not selected.any():
        return math.nan
    total, count = _banded_sum(source, edited, selected, torch.square)
    return total / count


def psnr(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, over the region (see :func:`mse`).

    ``inf`` for identical pixels; nan when the region is empty.
    """
    error = mse(source, edited, region)
    if math.isnan(error):
        return math.nan
    return math.inf if error == 0 else 10.0 * math.log10(data_range**2 / error)


_SSIM_HALO = 5  # rows each side an SSIM value reads: its 11-pixel Gaussian window


def ssim_outside(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM of the two images with the mask region blanked (set to 0) in both, as PIE-Bench does.

    Uses torchmetrics' functional SSIM (Gaussian window 11, sigma 1.5, data range 1). The
    blanked pixels are equal in both images, so the value measures the background, but windows
    straddling the mask edge still see it. nan when the mask covers the whole image or the
    image is smaller than the 11-pixel window.

    Images over :data:`WHOLE_SSIM_PIXELS` are measured band by band: each band's SSIM map is
    computed with the 5 rows of its window on either side and those rows dropped, so every
    value is the whole image's and the mean is the same, at a bounded memory.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(source, edited, mask)
    keep = mask <= 0.5
    height, width = source.shape[1:]
    if not keep.any() or min(height, width) < 11:
        return math.nan
    if height * width <= WHOLE_SSIM_PIXELS:
        blank = keep.to(source.dtype)
        value = structural_similarity_index_measure((edited * blank)[None].float(), (source * blank)[None].float(), data_range=1.0)
        return float(value)
    total = 0.0
    for rows in row_bands(height, width, min_rows=2 * _SSIM_HALO + 1, pixels=SSIM_TILE_PIXELS):
        low, high = max(rows.start - _SSIM_HALO, 0), min(rows.stop + _SSIM_HALO, height)
        blank = keep[low:high].to(source.dtype)
        _, ssim_map = structural_similarity_index_measure(
            (edited[:, low:high] * blank)[None].float(),
            (source[:, low:high] * blank)[None].float(),
            data_range=1.0,
            return_full_image=True,
        )
        total += ssim_map[..., rows.start - low : rows.stop - low, :].double().sum().item()
    return total / (source.shape[0] * height * width)


def image_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a float RGB tensor 3 x H x W in [0, 1]."""
    return TF.pil_to_tensor(image.convert("RGB")).float() / 255.0


def image_to_uint8(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 RGB tensor 3 x H x W."""
    return TF.pil_to_tensor(image.convert("RGB"))


def flexit_resize(image: PIL.Image.Image, size: int = 256) -> PIL.Image.Image:
    """FlexIT's evaluation preprocessing: Resize(size) of the short side, then CenterCrop(size)."""
    return TF.center_crop(TF.resize(image.convert("RGB"), size), [size, size])


def changed_region(source: torch.Tensor, edited: torch.Tensor, threshold: float, blur_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where an edit changed the image, at the image's resolution (docs/metrics-changed-region.md).

    The change of a pixel is the largest over the channels of ``|G * (edited - source)|``, G a
    Gaussian blur of ``blur_sigma`` pixels (none at 0; kernel 2 ceil(3 sigma) + 1); the changed
    region is where it exceeds ``threshold`` (images in [0, 1]). Returns the region (H x W, bool)
    and the change (H x W, float64).
    """
    _check_pair(source, edited)
    difference = edited.double() - source.double()
    if blur_sigma > 0:
        kernel = 2 * math.ceil(3 * blur_sigma) + 1
        difference = TF.gaussian_blur(difference[None], [kernel, kernel], [blur_sigma, blur_sigma])[0]
    change = difference.abs().amax(dim=0)
    return change > threshold, change


def region_scores(region: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """IoU, precision and recall (fractions) of a binary region against a binary ground truth.

    nan where undefined: IoU when both are empty, precision when the region is, recall when the truth is.
    """
    if region.shape != truth.shape:
        raise ValueError(f"Region shape {tuple(region.shape)} differs from the ground truth's {tuple(truth.shape)}.")
    region, truth = region.bool(), truth.bool()
    hits, found, wanted = (region & truth).sum().item(), region.sum().item(), truth.sum().item()
    union = found + wanted - hits
    return {
        "iou": hits / union if union else math.nan,
        "precision": hits / found if found else math.nan,
        "recall": hits / wanted if wanted else math.nan,
    }


def mask_boundary(mask: torch.Tensor) -> torch.Tensor:
    """The boundary pixels of a binary mask (H x W, bool), as DAVIS's ``seg2bmap`` marks them for a mask at
    the image's resolution: pixels whose right, bottom or bottom-right neighbour differs from them (the
    image's edge is no boundary, so the whole image has none)."""
    m = mask.bool()
    boundary = torch.zeros_like(m)
    boundary[:, :-1] |= m[:, :-1] != m[:, 1:]
    boundary[:-1, :] |= m[:-1, :] != m[1:, :]
    boundary[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return boundary


def _within(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within ``radius`` (Euclidean) of a boundary pixel: the boundary dilated by a disc."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    disc = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).float()
    reached = torch.nn.functional.conv2d(boundary.float()[None, None], disc[None, None], padding=radius)[0, 0]
    return reached > 0


def boundary_f(predicted: torch.Tensor, truth: torch.Tensor, tolerance: float = 0.008) -> float:
    """DAVIS's boundary F-measure of a binary mask against the ground truth (Perazzi et al., CVPR 2016).

    Boundary precision: the share of the mask's boundary pixels within ``tolerance`` x the image
    diagonal (at least one pixel; DAVIS's 0.008) of a ground-truth boundary pixel; recall the other way
    round; F their harmonic mean. As DAVIS's code: 1 when neither has a boundary, 0 when one has none
    (the whole image's mask has none).
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"Mask shapes differ: predicted {tuple(predicted.shape)}, ground truth {tuple(truth.shape)}.")
    height, width = truth.shape
    radius = max(1, math.ceil(tolerance * math.hypot(height, width)))
    found, wanted = mask_boundary(predicted), mask_boundary(truth)
    if not found.any() and not wanted.any():
        return 1.0
    if not found.any() or not wanted.any():
        return 0.0
    precision = (found & _within(wanted, radius)).sum().item() / found.sum().item()
    recall = (wanted & _within(found, radius)).sum().item() / wanted.sum().item()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
