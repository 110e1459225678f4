"""One edit to make (:class:`EditItem`) and what a split is (:class:`EditDataset`): items by id, so runs can shard and resume by id."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import PIL.Image
import torch

from benchmarks.data.fingerprints import content_fingerprint
from instdiffedit.registry import Registry, declared

if TYPE_CHECKING:
    import datasets
    from diffusers import DiffusionPipeline


@dataclass(frozen=True)
class EditItem:
    """One edit to make: the input image, the edit texts, and the ground truth where known.

    ``target`` is the edit text InstDiffEdit conditions on; ``source`` the text describing
    what is replaced (DiffEdit needs it); ``prompt`` a full caption of the input. ``gt_mask``
    is H x W, 1 where the edit should happen, at the image's resolution. ``flags`` say what
    was off with the item's files but could be handled (a resized mask, an empty mask).
    ``instruction`` is the split's own editing instruction ("change the cat to a dog"), for the
    instruction-tuned editors, where the split ships one (PIE-Bench); None elsewhere.
    """

    id: str
    image: PIL.Image.Image
    target: str
    source: str | None = None
    prompt: str | None = None
    gt_mask: torch.Tensor | None = None
    meta: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    instruction: str | None = None


class EditDataset(ABC):
    """A split: item ids are cheap to list; items are loaded one at a time.

    What a split offers beyond its items it says here, explicitly; the defaults are those of a
    split that offers nothing more, and the harness asks every split the same questions.
    """

    name: str
    has_masks: bool  # whether items carry ground-truth masks (methods that need one refuse splits without)

    @abstractmethod
    def item_ids(self) -> list[str]: ...

    @abstractmethod
    def load(self, item_id: str) -> EditItem: ...

    def fingerprint(self, item_id: str) -> str:
        """A hash of what the item is (:mod:`benchmarks.data.fingerprints`): its rows record it, and a
        resumed run redoes an item whose fingerprint changed. By default from the loaded item's
        pixels and texts; splits that read files hash the files' bytes instead (no decoding)."""
        return content_fingerprint(self.load(item_id))

    def prepare(self, base: DiffusionPipeline) -> None:
        """Called once the models are loaded (the Imagen split generates its inputs with ``base``); by default nothing."""

    def target_classes(self) -> list[str] | None:
        """The ImageNet classes edit accuracy picks among (the split's target classes), or None for a
        split whose items carry no ImageNet class (their accuracy is undefined)."""
        return None

    def reference_masks(self) -> dict[str, torch.Tensor]:
        """Trivial masks by name (H x W), whose IoU with the items' ground truth the summary shows
        beside the methods', so that a mask IoU has a floor to beat; none by default."""
        return {}


@dataclass(frozen=True)
class SplitLayout:
    """How reports show a split: its ``title``, in this order the metric ``columns`` of its table (empty:
    every metric its rows have), and its ``rank`` among the reports' tables (the paper's splits number
    theirs; the splits without one follow, by name)."""

    name: str
    title: str
    columns: tuple[str, ...] = ()
    rank: int | None = None


SPLIT_LAYOUTS: Registry[SplitLayout] = Registry("split")


def register_split(title: str, columns: tuple[str, ...] = (), rank: int | None = None) -> Callable[[type[EditDataset]], type[EditDataset]]:
    """Class decorator: reports show the split (its class's ``name``) under ``title`` with ``columns``, at ``rank``."""

    def register(split: type[EditDataset]) -> type[EditDataset]:
        SPLIT_LAYOUTS.add(split.name, SplitLayout(split.name, title, tuple(columns), rank))
        return declared(split)

    return register


def split_layouts() -> Registry[SplitLayout]:
    """:data:`SPLIT_LAYOUTS`, with the project's splits' declarations (importing their modules registers them)."""
    from benchmarks.data import pie_bench, splits, synthetic  # noqa: F401

    return SPLIT_LAYOUTS


def to_hf_dataset(split: EditDataset) -> datasets.Dataset:
    """A split as a Hugging Face ``datasets.Dataset`` (images and masks as ``Image`` features).

    For users who want to browse, filter or share a split with the ``datasets`` tooling; the
    runner itself reads items one at a time through :meth:`EditDataset.load`.
    """
    import datasets

    def rows():
        for item_id in split.item_ids():
            item = split.load(item_id)
            mask = None
            if item.gt_mask is not None:
                mask = PIL.Image.fromarray((item.gt_mask.numpy() * 255).astype("uint8"))
            yield {"id": item.id, "image": item.image, "mask": mask, "target": item.target, "source": item.source, "prompt": item.prompt}

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "mask": datasets.Image(),
            "target": datasets.Value("string"),
            "source": datasets.Value("string"),
            "prompt": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_generator(rows, features=features)
