"""Any mask source with any editor that takes a mask: one method, two parts.

A mask source answers "where" (:mod:`instdiffedit.mask_sources`: InstDiffEdit's instant masks,
DiffEdit's noise differences, the item's own mask, the centred disc, the whole image); a region
editor answers "what, given where" (:mod:`instdiffedit.region_editors`: the family's inpainting
twin, latent blending, FlowEdit restricted to the mask, any editor composited inside the mask).
:class:`Compose` runs the first as its first stage and the second as its final step, on the
staged methods' frame (:class:`~instdiffedit.staged.StagedEditor`: timing, denoiser accounting,
the resizing to the working size and back).

The staged mask methods are such compositions: InstDiffEdit is its instant masks (made during its
own mask-guided denoising, whose latents the final step then ignores) with the inpainting twin,
DiffEdit its noise-difference mask with the twin, the oracle the item's mask with the twin (latent
blending where the model has no twin). Methods that decode their own latents (SDEdit, FlowEdit,
the no-mask ablation) are not; SDEdit and FlowEdit equal the whole image's mask with SDEdit
composited inside it and with FlowEdit restricted to it. ``tests/test_compose.py`` pins each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import PIL.Image
import torch
from diffusers import DiffusionPipeline

from instdiffedit.arithmetic import Arithmetic
from instdiffedit.backbones import Backbone
from instdiffedit.mask_sources import MaskSource
from instdiffedit.region_editors import RegionEditor
from instdiffedit.registry import register_method
from instdiffedit.staged import STAGED, FirstStage, StagedEditor


@register_method("compose", role="composition", rank=1)
class Compose(StagedEditor):
    """A mask source's masks, edited inside by a region editor.

    Args:
        pipe, inpaint_pipe: the base pipeline (or its backbone) and the family's inpainting twin
            (None where the model has none); both parts are built from them, as methods are, on
            one shared backbone.
        mask: builds the mask source from ``(backbone, None)``: a staged mask method's class
            (``InstDiffEdit``, ``DiffEdit``, ``OracleInpaint``; only its first stage runs) or a
            trivial mask (:mod:`instdiffedit.mask_sources`), with its settings bound.
        editor: builds the region editor from ``(backbone, inpaint_pipe)``.
        scheduler, resolution, arithmetic: the shared backbone's scheduler and working resolution,
            and how the mask is resized to it (see :class:`StagedEditor`).

    ``capabilities`` of an instance are its parts' joined: the families both run on, the ground
    truth if the mask source reads it, the twin if the editor uses it, per-step masks if the mask
    source has them.
    """

    capabilities = STAGED
    """The frame's own; an instance's are joined with its parts' (``self.capabilities``)."""

    def __init__(
        self,
        pipe: DiffusionPipeline | Backbone,
        inpaint_pipe: DiffusionPipeline | None = None,
        *,
        mask: Callable[..., MaskSource],
        editor: Callable[..., RegionEditor],
        scheduler: str | None = None,
        resolution: int | None = None,
        arithmetic: Arithmetic = "authors",
    ) -> None:
        super().__init__(
            pipe,
            None,
            output="inpaint",
            scheduler=scheduler,
            resolution=resolution,
            arithmetic=arithmetic,
            region_editor=lambda backbone: editor(backbone, inpaint_pipe),
        )
        self.mask_source = mask(self.backbone, None)
        self.capabilities = STAGED.joined(self.mask_source.capabilities, self.region_editor.capabilities)

    def use_split_mask(self, mask: torch.Tensor) -> None:
        """Hand the split's reference mask to the mask source that edits inside it (``capabilities.split_mask``)."""
        if self.capabilities.split_mask is None:
            raise ValueError(f"{type(self.mask_source).__name__} uses no split mask.")
        self.mask_source.use_split_mask(mask)

    def first_stages(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None],
        masks: Sequence[torch.Tensor | None],
        generators: Sequence[torch.Generator | None],
    ) -> list[FirstStage]:
        """The mask source's masks (and per-step masks); ``masks`` are the ground truth, read only by the oracle."""
        return self.mask_source.first_stages(images, targets=targets, sources=sources, masks=masks, generators=generators)

    def first_stage(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> FirstStage:
        return self.first_stages([image], targets=[target], sources=[source], masks=[mask], generators=[generator])[0]
