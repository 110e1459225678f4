"""The image-library arithmetic of the authors' mask code, in torch on the maps' device.

The authors' masks go through numpy's ``astype(np.uint8)``, PIL's 8-bit bicubic ``resize`` and
OpenCV's ``GaussianBlur`` on the CPU at every step. The same numbers come from here without
leaving the device: both filters are separable, so each is a precomputed weight matrix per axis
(cached per size and device) applied with two matmuls in float64, exact for PIL's 8-bit
fixed-point sums and untouched by TF32 matmul settings. :data:`Arithmetic` names the choice
between this and a clean float path.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, get_args

import torch

Arithmetic = Literal["authors", "float"]
"""``"authors"``: the authors' uint8 quantisation, PIL bicubic resampling and binarised bicubic
masks, emulated exactly; ``"float"``: unquantised float maps, bilinear upsampling, nearest masks."""

ARITHMETICS: tuple[str, ...] = get_args(Arithmetic)


def check_arithmetic(arithmetic: str) -> None:
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {', '.join(map(repr, ARITHMETICS))}; got {arithmetic!r}.")


def uint8_cast(values: torch.Tensor) -> torch.Tensor:
    """numpy's ``astype(np.uint8)`` of values in [0, 256): truncation (the dtype is kept)."""
    return values.floor()


# -- PIL's bicubic resampling (libImaging/Resample.c) ---------------------------------------

_PIL_PRECISION_BITS = 32 - 8 - 2  # fixed-point bits of PIL's 8-bit resampling coefficients


def _pil_bicubic_filter(x: float) -> float:
    """PIL's bicubic kernel: Keys' cubic convolution with a = -0.5 (torch's bicubic uses -0.75)."""
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@functools.cache
def pil_bicubic_weights(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    """PIL's 8-bit bicubic coefficients from ``in_size`` to ``out_size`` samples (out x in, float64).

    As PIL computes them: pixel centres at +0.5, the support widened by the scale when
    downsampling, each output's taps clipped to the image and renormalised to sum 1, then
    rounded half away from zero to integers in units of 2^-22. Cached per sizes and device.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    inverse = 1.0 / filterscale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        taps = [_pil_bicubic_filter((x - center + 0.5) * inverse) for x in range(first, stop)]
        total = 0.0
        for tap in taps:  # summed in order, as PIL does (Python's sum() compensates)
            total += tap
        for x, tap in zip(range(first, stop), taps):
            w = (tap / total if total != 0.0 else tap) * (1 << _PIL_PRECISION_BITS)
            weights[out, x] = math.trunc(w - 0.5 if w < 0 else w + 0.5)
    return weights.to(device)


def _pil_clip8(sums: torch.Tensor) -> torch.Tensor:
    """PIL's 8-bit output of a fixed-point sum: + 1/2, shift right, clip to [0, 255]."""
    half = 1 << (_PIL_PRECISION_BITS - 1)
    return torch.floor((sums + half) / (1 << _PIL_PRECISION_BITS)).clamp_(0, 255)


def pil_bicubic_resize(levels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's ``Image.resize((W, H), BICUBIC)`` of 8-bit single-channel images, batched.

    ``levels`` is ... x h x w holding integers in [0, 255]; the result is ... x H x W (float64,
    integers in [0, 255]). Bit-exact: the horizontal pass first, rounded to 8 bits, then the
    vertical pass, as PIL's C core runs them; an axis whose size does not change is not
    resampled (same-size is a copy). (PIL 13 starts some rescalings whose axes change by
    different factors with the vertical pass; the square maps and masks here are unaffected.)
    """
    out = levels.to(torch.float64)
    height, width = out.shape[-2:]
    if width != size[1]:
        out = _pil_clip8(out @ pil_bicubic_weights(width, size[1], out.device).T)
    if height != size[0]:
        out = _pil_clip8(pil_bicubic_weights(height, size[0], out.device) @ out)
    return out


# -- OpenCV's Gaussian blur ----------------------------------------------------------------

_OPENCV_SMALL_GAUSSIANS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
}


def opencv_gaussian_kernel(ksize: int, sigma: float) -> tuple[float, ...]:
    """``cv2.getGaussianKernel(ksize, sigma)``: the taps ``cv2.GaussianBlur`` uses.

    For ``sigma <= 0`` and ``ksize <= 7`` OpenCV takes its fixed binomial tables (5: [1, 4, 6, 4,
    1] / 16), not a sigma formula; otherwise exp(-x^2 / 2 s^2) normalised to sum 1, with
    s = ``sigma``, or 0.3 ((ksize - 1) / 2 - 1) + 0.8 for ``sigma <= 0``.
    """
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"The blur kernel size must be a positive odd number, got {ksize}.")
    if sigma <= 0 and ksize in _OPENCV_SMALL_GAUSSIANS:
        return _OPENCV_SMALL_GAUSSIANS[ksize]
    s = sigma if sigma > 0 else 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    taps = [math.exp(-((i - (ksize - 1) / 2) ** 2) / (2 * s * s)) for i in range(ksize)]
    return tuple(t / sum(taps) for t in taps)


def _reflect_101(index: int, size: int) -> int:
    """OpenCV's BORDER_REFLECT_101 (its default): ``gfedcb|abcdefgh|gfedcba``."""
    if size == 1:
        return 0
    while not 0 <= index < size:
        index = -index if index < 0 else 2 * (size - 1) - index
    return index


@functools.cache
def blur_matrix(size: int, ksize: int, sigma: float, passes: int, device: torch.device) -> torch.Tensor:
    """``passes`` OpenCV Gaussian blurs along one axis of ``size`` samples, as one matrix (float64).

    The border is reflected without repeating the edge (BORDER_REFLECT_101), so the matrix of
    one pass is banded with folded corners; ``passes`` passes are its power. Cached per
    settings and device.
    """
    taps = opencv_gaussian_kernel(ksize, sigma)
    radius = ksize // 2
    one_pass = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for offset, tap in enumerate(taps):
            one_pass[i, _reflect_101(i + offset - radius, size)] += tap
    return torch.linalg.matrix_power(one_pass, passes).to(device)
