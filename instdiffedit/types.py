"""The one result type and the one interface every editing method implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import PIL.Image
import torch


@dataclass
class EditResult:
    """What an editor returns for one image.

    Masks are CPU tensors at the input image's resolution (H x W). ``timings`` holds seconds
    for the phases ``"mask"`` (until the final mask exists), ``"edit"`` (producing the edited
    image from latents, outside inpainting), ``"inpaint"`` (the inpainting call) and
    ``"total"`` (wall clock of the whole edit). ``unet_evals`` counts UNet image-evaluations:
    batch rows summed over every UNet call, inpainting included. ``mask_history`` holds the
    binary mask of every denoising step (T x h x w, bool, at the method's mask resolution) for
    methods whose mask evolves during denoising (InstDiffEdit's instant masks), else None: it is
    what the per-step mask figure of the reports draws.
    """

    image: PIL.Image.Image
    mask: torch.Tensor | None = None
    soft_mask: torch.Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)
    unet_evals: int = 0
    mask_history: torch.Tensor | None = None


@runtime_checkable
class Editor(Protocol):
    """An image editor: InstDiffEdit and every baseline implement this.

    ``target`` is the edit text, ``source`` the text of what is replaced (methods that need
    none ignore it), ``prompt`` a caption of the input, ``mask`` a ground-truth mask (H x W,
    1 = edit) that only oracle methods use, ``generator`` the source of every random draw.
    """

    def edit(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None = None,
        prompt: str | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> EditResult: ...
