"""From cross-attention maps to a mask: InstDiffEdit's word maps, indexing, aggregation and refinement.

Every function works on tensors on the maps' device, batched over words, and never syncs
with the host: the per-step mask costs a few small kernels. By default the numbers are the
authors' (their uint8 casts, PIL's bicubic and OpenCV's blur, see :mod:`instdiffedit.arithmetic`);
``arithmetic="float"`` is the unquantised float path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from instdiffedit.arithmetic import (
    Arithmetic,
    blur_matrix,
    check_arithmetic,
    pil_bicubic_resize,
    uint8_cast,
)
from instdiffedit.tokens import TokenLayout

_EPS = 1e-8
_TINY = torch.finfo(torch.float32).tiny


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map (the last two dimensions) to [0, 1]; a constant map becomes all zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(_EPS)


def blur(maps: torch.Tensor, kernel: int, sigma: float, passes: int = 1) -> torch.Tensor:
    """``cv2.GaussianBlur(m, (kernel, kernel), sigma)`` of each map (the last two dimensions), ``passes`` times.

    OpenCV's kernel (for ``sigma <= 0`` and ``kernel <= 7`` its fixed binomial table, see
    :func:`~instdiffedit.arithmetic.opencv_gaussian_kernel`) and border (reflected without
    repeating the edge). All passes are one precomputed matrix per axis: two float64 matmuls.
    """
    rows = blur_matrix(maps.shape[-2], kernel, sigma, passes, maps.device)
    columns = blur_matrix(maps.shape[-1], kernel, sigma, passes, maps.device)
    return (rows @ maps.to(torch.float64) @ columns.T).to(maps.dtype)


def columns_mean(attention: torch.Tensor, columns: Sequence[int]) -> torch.Tensor:
    """The mean of the maps of token ``columns`` (h x w x L -> h x w).

    Taken as slices of the consecutive runs of columns, never with a list index (a
    host-to-device copy on CUDA): one slice for a word in one encoder's tokens, two for an SD 3.x
    word in both the CLIP and the T5 part.
    """
    starts = [c for i, c in enumerate(columns) if i == 0 or c != columns[i - 1] + 1]
    ends = [c for i, c in enumerate(columns) if i == len(columns) - 1 or columns[i + 1] != c + 1]
    runs = [attention[..., start : end + 1] for start, end in zip(starts, ends, strict=True)]
    return (runs[0] if len(runs) == 1 else torch.cat(runs, dim=-1)).mean(dim=-1)


def word_maps(attention: torch.Tensor, layout: TokenLayout, size: tuple[int, int], arithmetic: Arithmetic = "authors") -> torch.Tensor:
    """Per-word maps ``[inverted start token, word_1 .. word_n, end token]`` (K x H x W), each in [0, 1].

    ``attention`` is h x w x L (one map per token column). A word split into several tokens
    gets the mean of its tokens' maps. The start token attends to the background, so its map
    is inverted (1 - a0): it highlights the object. Where the text has no start token (T5's),
    the map inverted is the mean over the layout's ``reference`` columns (see
    :mod:`instdiffedit.token_references`); for CLIP text it is column 0, the start token. Each
    map is upsampled to ``size`` and min-max normalised:

    - ``"authors"``: as the authors' code, bit for bit: scaled to 255 / max and cast to uint8,
      PIL's bicubic to ``size`` (8-bit), the start map inverted (255 - a0), then min-max to
      [0, 255] and cast to uint8 again; the result is those levels / 255.
    - ``"float"``: bilinear in float, min-max, no quantisation.
    """
    check_arithmetic(arithmetic)
    columns = [columns_mean(attention, layout.reference)]
    columns += [columns_mean(attention, span) for span in layout.spans]
    columns.append(attention[..., layout.end])
    maps = torch.stack(columns)
    if arithmetic == "float":
        maps = minmax(F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0])
        return torch.cat([1 - maps[:1], maps[1:]])
    maps = maps.float()  # the authors' maps are float32 (their base model runs in float32)
    levels = pil_bicubic_resize(uint8_cast(255 * maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(_TINY)), size)
    scaled = torch.cat([255 - levels[:1], levels[1:]]).float() / 255
    low = scaled.amin(dim=(-2, -1), keepdim=True)
    high = scaled.amax(dim=(-2, -1), keepdim=True)
    return uint8_cast((scaled - low) / (high - low).clamp_min(_TINY) * 255) / 255


def word_positions(maps: torch.Tensor, th1: float, th2: float) -> torch.Tensor:
    """InstDiffEdit's indexing: a position vector over ``maps`` with values in {-1, 0, +1}.

    ``maps`` are :func:`word_maps`' (the start token's inverted): the word whose map is closest
    to the inverted start map (cosine) is the key word k*. Words whose maps are at least
    ``th1``-similar to k*'s are positive, at most ``th2``-similar negative; k* itself is always
    positive (the authors set its score to 1, so th1 = 1 keeps it); the start and end tokens
    are 0. Cosines in float64, as the authors' scikit-learn computes them.
    """
    flat = maps.flatten(1).to(torch.float64)
    words = flat[1:-1]
    key = F.cosine_similarity(words, flat[:1], dim=1).argmax()
    similarity = F.cosine_similarity(words, words.index_select(0, key[None]), dim=1)  # words[key] would sync
    similarity = torch.where(torch.arange(len(words), device=maps.device) == key, 1.0, similarity)
    signs = (similarity >= th1).long() - (similarity <= th2).long()
    zero = signs.new_zeros(1)
    return torch.cat([zero, signs, zero])


def aggregate(maps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """m = max(F - G, 0): the positive words' mean map minus the negative words' (background).

    F and G are each min-max normalised; with no negative word, m = F. Written with weights
    and ``torch.where`` rather than boolean indexing so that it never waits on the host, and
    as elementwise sums rather than a matmul, which TF32 settings would round.
    """
    positive = (positions == 1).to(maps.dtype)
    negative = (positions == -1).to(maps.dtype)
    foreground = minmax((positive[:, None, None] * maps).sum(dim=0) / positive.sum().clamp_min(1))
    background = minmax((negative[:, None, None] * maps).sum(dim=0) / negative.sum().clamp_min(1))
    return torch.where(negative.sum() > 0, (foreground - background).clamp_min(0), foreground)


@dataclass(frozen=True, kw_only=True)
class MaskRefiner:
    """InstDiffEdit's mask from word maps: aggregation, blur, normalisation, threshold.

    Defaults are the paper's and the authors' code's: th1 = 0.9, th2 = 0.6, two passes of
    ``cv2.GaussianBlur(m, (5, 5), 0)`` (``blur_sigma <= 0``: OpenCV's fixed [1, 4, 6, 4, 1] / 16
    table; a positive sigma uses the Gaussian formula), threshold phi = 0.2. ``arithmetic``
    is how :meth:`word_maps` computes the maps (see :func:`word_maps`). Keyword-only: six
    numbers in a row are too easy to swap.
    """

    th1: float = 0.9
    th2: float = 0.6
    threshold: float = 0.2
    blur_kernel: int = 5
    blur_sigma: float = 0.0
    blur_passes: int = 2
    arithmetic: Arithmetic = "authors"

    def __post_init__(self) -> None:
        if not 0 <= self.th2 <= self.th1 <= 1:
            raise ValueError(f"Need 0 <= th2 <= th1 <= 1, got th1={self.th1}, th2={self.th2}.")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}.")
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {self.blur_kernel}.")
        if self.blur_passes < 0:
            raise ValueError(f"blur_passes must be at least 0, got {self.blur_passes}.")
        check_arithmetic(self.arithmetic)

    def word_maps(self, attention: torch.Tensor, layout: TokenLayout, size: tuple[int, int]) -> torch.Tensor:
        return word_maps(attention, layout, size, self.arithmetic)

    def positions(self, maps: torch.Tensor) -> torch.Tensor:
        return word_positions(maps, self.th1, self.th2)

    def __call__(self, maps: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The soft mask in [0, 1] and the binary mask (both H x W) for ``maps`` (K x H x W)."""
        soft = blur(aggregate(maps, positions)[None], self.blur_kernel, self.blur_sigma, self.blur_passes)
        soft = minmax(soft)[0]
        return soft, (soft > self.threshold).to(soft.dtype)
