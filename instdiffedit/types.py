"""The one result type, the one interface every editing method implements, and what a method
declares it can do beyond it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class Capabilities:
    """What an editor offers beyond :meth:`Editor.edit`, declared on its class as ``capabilities``.

    The harness reads these and never probes an editor for methods or attributes; the config
    check reads them from the class, before any model loads.

    Args:
        families: the model families the method runs on (keys of
            :data:`instdiffedit.backbones.FAMILY_NAMES`: "sd", "sdxl", "sd3", "flux"); any other
            is refused before an edit (:func:`instdiffedit.backbones.check_family`).
        batched: it is a :class:`BatchEditor`: ``edit_batch`` edits K items in shared denoiser
            calls, each item with its own generator (the runner's ``batch_size``).
        needs_ground_truth_mask: it edits inside each item's ground-truth mask (the oracle), so a
            split without masks is refused.
        mask_history: its results carry ``EditResult.mask_history`` (the mask of every
            denoising step), which the run folder saves for the per-step mask figure.
        fast_paths: its denoiser calls go through the backbone's shared diffusion steps, so the
            model's fast path (CUDA graphs, compilation) applies; False for methods that run
            inside a diffusers pipeline (eager whatever ``fast_path`` says).
        instructions: it edits from an editing instruction ("Replace the cat with a dog"), and its
            ``edit`` also takes ``instruction=``: the split's own instruction where it ships
            one (``EditItem.instruction``), which the harness then passes; without one, the
            editor writes it from ``target`` and ``source``.
        needs_inpainting_model: it edits with the family's inpainting twin, so a model
            configured without one is refused.
        split_mask: the name of the split's reference mask it edits inside (a key of the split's
            ``reference_masks``: the toy split's centred disc), handed to it by ``use_split_mask``
            before the first edit; a split without that mask is refused. None: it needs none.

    The parts of a composed method (a mask source and an editor) declare theirs; the method's are
    their :meth:`joined` ones.
    """

    families: frozenset[str]
    batched: bool = False
    needs_ground_truth_mask: bool = False
    mask_history: bool = False
    fast_paths: bool = False
    instructions: bool = False
    needs_inpainting_model: bool = False
    split_mask: str | None = None

    def joined(self, *parts: Capabilities) -> Capabilities:
        """What a method built of these parts offers: the families they all run on; batched and on the
        fast paths if all are; whatever any of them needs or takes (the ground truth, a twin, a
        split mask, an instruction); per-step masks if any part has them."""
        every = (self, *parts)
        split_masks = {c.split_mask for c in every} - {None}
        if len(split_masks) > 1:
            raise ValueError(f"Parts that need different split masks cannot be joined: {sorted(split_masks)}.")
        return Capabilities(
            families=frozenset.intersection(*(c.families for c in every)),
            batched=all(c.batched for c in every),
            needs_ground_truth_mask=any(c.needs_ground_truth_mask for c in every),
            mask_history=any(c.mask_history for c in every),
            fast_paths=all(c.fast_paths for c in every),
            instructions=any(c.instructions for c in every),
            needs_inpainting_model=any(c.needs_inpainting_model for c in every),
            split_mask=next(iter(split_masks), None),
        )


@runtime_checkable
class Editor(Protocol):
    """An image editor: InstDiffEdit and every baseline implement this.

    ``target`` is the edit text, ``source`` the text of what is replaced (methods that need
    none ignore it), ``prompt`` a caption of the input, ``mask`` a ground-truth mask (H x W,
    1 = edit) that only oracle methods use, ``generator`` the source of every random draw.
    """

    capabilities: ClassVar[Capabilities]

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


@runtime_checkable
class BatchEditor(Editor, Protocol):
    """An editor whose ``capabilities.batched`` is True: it also edits several items together.

    Item k is edited with ``targets[k]``, ``sources[k]``, ... and its own ``generators[k]``, drawn
    in the same order as alone, so it gets the result it gets alone (up to the floating-point
    effects of larger batches).
    """

    def edit_batch(
        self,
        images: Sequence[PIL.Image.Image],
        *,
        targets: Sequence[str],
        sources: Sequence[str | None] | None = None,
        prompts: Sequence[str | None] | None = None,
        masks: Sequence[torch.Tensor | None] | None = None,
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> list[EditResult]: ...
