"""From cross-attention maps to a mask: InstDiffEdit's word maps, indexing, aggregation and refinement.

Every function works on tensors on the maps' device, batched over words, and never syncs
with the host: the per-step mask costs a few small kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from instdiffedit.tokens import TokenLayout

_EPS = 1e-8


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map (the last two dimensions) to [0, 1]; a constant map becomes all zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(_EPS)


def blur(maps: torch.Tensor, kernel: int, sigma: float, passes: int = 1) -> torch.Tensor:
    """Gaussian blur of each map (the last two dimensions), ``passes`` times, reflect padding."""
    for _ in range(passes):
        maps = gaussian_blur(maps, [kernel, kernel], [sigma, sigma])
    return maps


def word_maps(attention: torch.Tensor, layout: TokenLayout, size: tuple[int, int]) -> torch.Tensor:
    """Per-word maps ``[start token, word_1 .. word_n, end token]`` (K x H x W), each in [0, 1].

    ``attention`` is h x w x L (one map per token column). A word split into several tokens
    gets the mean of its tokens' maps. Maps are upsampled bilinearly to ``size`` (the latent
    size) before min-max normalisation.
    """
    columns = [attention[..., 0]]
    # A word's tokens are consecutive: a slice, not a list index (a host-to-device copy on CUDA).
    columns += [attention[..., span[0] : span[-1] + 1].mean(dim=-1) for span in layout.spans]
    columns.append(attention[..., layout.end])
    maps = torch.stack(columns)
    maps = F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
    return minmax(maps)


def word_positions(maps: torch.Tensor, th1: float, th2: float) -> torch.Tensor:
    """InstDiffEdit's indexing: a position vector over ``maps`` with values in {-1, 0, +1}.

    The start token attends to the background, so its inverted map highlights the edited
    object; the word whose map is closest to it (cosine) is the key word k*. Words whose maps
    are at least ``th1``-similar to k*'s are positive, at most ``th2``-similar negative; the
    start and end tokens are 0.
    """
    flat = maps.flatten(1)
    words = flat[1:-1]
    key = F.cosine_similarity(words, (1 - flat[0])[None], dim=1).argmax()
    similarity = F.cosine_similarity(words, words.index_select(0, key[None]), dim=1)  # words[key] would sync
    signs = (similarity >= th1).long() - (similarity <= th2).long()
    zero = signs.new_zeros(1)
    return torch.cat([zero, signs, zero])


def aggregate(maps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """m = max(F - G, 0): the positive words' mean map minus the negative words' (background).

    F and G are each min-max normalised; with no negative word, m = F. Written with weights
    and ``torch.where`` rather than boolean indexing so that it never waits on the host.
    """
    positive = (positions == 1).to(maps.dtype)
    negative = (positions == -1).to(maps.dtype)
    foreground = minmax(torch.einsum("k,khw->hw", positive / positive.sum().clamp_min(1), maps))
    background = minmax(torch.einsum("k,khw->hw", negative / negative.sum().clamp_min(1), maps))
    return torch.where(negative.sum() > 0, (foreground - background).clamp_min(0), foreground)


@dataclass(frozen=True)
class MaskRefiner:
    """InstDiffEdit's mask from word maps: aggregation, blur, normalisation, threshold.

    Defaults are the paper's: th1 = 0.9, th2 = 0.6, two 5x5 Gaussian blurs with sigma 1.1
    (OpenCV's sigma for a 5x5 kernel), threshold phi = 0.2.
    """

    th1: float = 0.9
    th2: float = 0.6
    threshold: float = 0.2
    blur_kernel: int = 5
    blur_sigma: float = 1.1
    blur_passes: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.th2 <= self.th1 <= 1:
            raise ValueError(f"Need 0 <= th2 <= th1 <= 1, got th1={self.th1}, th2={self.th2}.")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}.")
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {self.blur_kernel}.")

    def positions(self, maps: torch.Tensor) -> torch.Tensor:
        return word_positions(maps, self.th1, self.th2)

    def __call__(self, maps: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The soft mask in [0, 1] and the binary mask (both H x W) for ``maps`` (K x H x W)."""
        soft = blur(aggregate(maps, positions)[None], self.blur_kernel, self.blur_sigma, self.blur_passes)
        soft = minmax(soft)[0]
        return soft, (soft > self.threshold).to(soft.dtype)
