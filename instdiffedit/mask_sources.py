"""Mask sources that need no model: "where", given by a trivial shape.

A mask source gives each item's :class:`~instdiffedit.staged.FirstStage` (its final mask, and its
per-step masks where it has them) through ``first_stages``, the signature every staged method's
first stage has: so InstDiffEdit (instant masks), DiffEdit (noise differences) and the oracle
(the item's own mask) are mask sources as they are, and a composed method
(:class:`instdiffedit.compose.Compose`) builds any of them as a method is built. The two here are
the reference masks of the reports: the whole image and the centred disc.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.backbones import BACKBONE_FAMILIES, Backbone
from instdiffedit.staged import FirstStage
from instdiffedit.types import Capabilities


class MaskSource(Protocol):
    """Gives each item's mask: ``first_stages`` of the images, texts, ground-truth masks (None where
    the split has none; only sources that declare ``needs_ground_truth_mask`` read them) and generators."""

    capabilities: ClassVar[Capabilities]

    def first_stages(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        masks: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator | None],
    ) -> list[FirstStage]: ...


class _TrivialMask(ABC):
    """A mask without a model: built as every mask source is (from the pipelines, unused here)."""

    def __init__(self, pipe: DiffusionPipeline | Backbone | None = None, inpaint_pipe: DiffusionPipeline | None = None) -> None:
        """``pipe`` and ``inpaint_pipe`` are not used: a trivial mask needs no model."""

    @abstractmethod
    def mask(self, image: PIL.Image.Image) -> torch.Tensor:
        """The image's mask (H x W, 1 = edit)."""

    def first_stages(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        masks: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator | None],
    ) -> list[FirstStage]:
        return [FirstStage(mask=self.mask(image)) for image in images]


class WholeImage(_TrivialMask):
    """The whole image: every pixel may change (the mask that makes any editor a no-mask one)."""

    capabilities: ClassVar[Capabilities] = Capabilities(families=BACKBONE_FAMILIES, batched=True, fast_paths=True)

    def mask(self, image: PIL.Image.Image) -> torch.Tensor:
        return torch.ones(image.height, image.width)


class CentredDisc(_TrivialMask):
    """The split's centred disc (the toy split's: a disc of its mean object area, in the middle of
    the image), the reference mask whose IoU the run summaries show; the harness hands it over
    (:meth:`use_split_mask`) before the first edit."""

    capabilities: ClassVar[Capabilities] = Capabilities(families=BACKBONE_FAMILIES, batched=True, fast_paths=True, split_mask="disc")

    def __init__(self, pipe: DiffusionPipeline | Backbone | None = None, inpaint_pipe: DiffusionPipeline | None = None) -> None:
        super().__init__(pipe, inpaint_pipe)
        self.disc: torch.Tensor | None = None

    def use_split_mask(self, mask: torch.Tensor) -> None:
        """The split's disc (H x W, 1 inside); resized to each image's size where it differs."""
        self.disc = (mask > 0.5).float()

    def mask(self, image: PIL.Image.Image) -> torch.Tensor:
        if self.disc is None:
            raise ValueError("The centred disc is the split's (its reference mask 'disc'): call use_split_mask with it before the first edit.")
        if self.disc.shape != (image.height, image.width):
            resized = torch.nn.functional.interpolate(self.disc[None, None], size=(image.height, image.width), mode="nearest")
            return resized[0, 0]
        return self.disc
