"""The paper's splits: Editing-Mask (human masks), ImageNet (FlexIT test split) and Imagen prompts.

The lists are the InstDiffEdit authors' (their repository at a fixed commit), downloaded at run
time and verified by sha256; images come from the authors' zip (Editing-Mask), the user's
ImageNet validation folder, or the base model itself (Imagen: the original Imagen samples are
not public). Every file an item needs is looked up when the split is built, before any model
loads, and all that are missing are listed in one error.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from diffusers import StableDiffusionPipeline

from benchmarks.data.downloads import RemoteFile, extract_zip, fetch
from benchmarks.data.files import (
    IMAGE_SUFFIXES,
    MissingFilesError,
    Problems,
    SplitInputError,
    open_mask,
    open_rgb,
)
from benchmarks.data.fingerprints import fingerprint
from benchmarks.data.ids import checked_id, id_problem
from benchmarks.data.items import EditDataset, EditItem, register_split
from instdiffedit.ranges import Side, Steps, checked_ranges

AUTHORS_COMMIT = "455968b3e2eca95451e335862a8c242e34a52193"
_RAW = f"https://raw.githubusercontent.com/xiaotianqing/InstDiffEdit/{AUTHORS_COMMIT}"
LISTS = {
    "editing_mask": RemoteFile(
        f"{_RAW}/dataset_txt/Editing-Mask_list.txt",
        sha256="01fbf5a04e4d6105a5d3e3b1530045c0656847bd613cb93fed990fff6f3a516d",
    ),
    "imagenet": RemoteFile(
        f"{_RAW}/dataset_txt/ImageNet_list.txt",
        sha256="2cd3ef729b1176515c2dff777c29ad10c7d6f8de771537ce3e09283b86f172e1",
    ),
    "imagen": RemoteFile(
        f"{_RAW}/dataset_txt/Imagen_list.txt",
        sha256="3f10e57e2bb5c5ad972fa4d1baff68704e3d1d7689690cbf7cd3e9f74245c6fa",
    ),
}
EDITING_MASK_ZIP = RemoteFile(f"{_RAW}/dataset/Editing-Mask.zip", git_blob="93a5af438bf0400b78bfbeb3f9e92c777bc93c23")


@dataclass(frozen=True)
class ListEntry:
    """One line of an authors' list.

    ImageNet-style: ``ILSVRC2012_val_XXXXXXXX.JPEG <> source class <> target class``; the edit
    text is "a <target class>". Imagen-style: ``id <> prompt <> source phrase <> target phrase``;
    the edit text is the target phrase.
    """

    id: str
    kind: Literal["imagenet", "imagen"]
    source: str
    target: str
    prompt: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


def parse_list(text: str, source: str | Path = "the list") -> list[ListEntry]:
    """Parse a list of either line kind (or both, as Editing-Mask mixes them), any line ending.

    Every line is checked (its fields, its id: :func:`~benchmarks.data.ids.id_problem`) and every
    problem is reported at once, with ``source`` (the list's file) and the line, as
    :class:`~benchmarks.data.files.SplitInputError`.
    """
    problems = Problems()
    entries = []
    lines_of: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), 1):  # splitlines drops "\r\n" whole
        if not line.strip():
            continue
        where = f"line {number}"
        fields = [part.strip() for part in line.split("<>")]
        if len(fields) not in (3, 4):
            problems.add(where, f"{len(fields)} fields separated by '<>'; expected 3 or 4: {line[:200]!r}")
            continue
        if empty := [i + 1 for i, value in enumerate(fields) if not value]:
            problems.add(where, f"field(s) {', '.join(map(str, empty))} empty")
            continue
        if len(fields) == 3:
            file, source_class, target = fields
            if problem := id_problem(file):
                problems.add(where, f"the image file must be a name: {problem}")
                continue
            meta = {"file": file, "source_class": source_class, "target_class": target}
            entry = ListEntry(Path(file).stem, "imagenet", source_class, f"a {target}", meta=meta)
        else:
            item_id, prompt, source_phrase, target = fields
            entry = ListEntry(item_id, "imagen", source_phrase, target, prompt)
        if problem := id_problem(entry.id):
            problems.add(where, problem)
            continue
        lines_of.setdefault(entry.id, []).append(number)
        entries.append(entry)
    for item_id, numbers in lines_of.items():
        if len(numbers) > 1:
            problems.add(f"lines {', '.join(map(str, numbers))}", f"repeat the id {item_id!r}")
    if not entries and not problems.items:
        problems.add("the list", "holds no items")
    problems.raise_if_any(str(source), "Fix these lines (one item per line, fields separated by '<>') and run again.")
    return entries


def read_list(split: str, list_path: str | None, cache_dir: str | Path, config_key: str) -> list[ListEntry]:
    """The split's list from ``list_path`` or the cache (downloaded and verified once)."""
    if list_path is not None:
        path = Path(list_path).expanduser()
        if not path.is_file():
            raise MissingFilesError(f"The list file {path} given by {config_key} does not exist.")
    else:
        remote = LISTS[split]
        path = Path(cache_dir).expanduser() / split / Path(remote.url).name
        path = fetch(remote, path, what=f"the {split} list", config_key=f"{config_key}=/path/to/{path.name}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise SplitInputError(f"The list file {path} ({config_key}) is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    return parse_list(text, path)


def _index_images(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.stem, []).append(path)
    return index


def _missing_error(split: str, missing: list[str], found: Iterable[str], fix: str) -> MissingFilesError:
    found = sorted(found)
    return MissingFilesError(
        f"{len(missing)} item(s) of {split} have no file: {', '.join(missing[:10])}"
        f"{' ...' if len(missing) > 10 else ''}; found {len(found)} file(s), e.g. {', '.join(found[:10]) or 'none'}. {fix}"
    )


_MASK_WORD = re.compile(r"[_\-. ]*mask[_\-. ]*", re.IGNORECASE)


def _is_mask(path: Path, root: Path) -> bool:
    return any("mask" in part.lower() for part in path.relative_to(root).parts[:-1]) or "mask" in path.stem.lower()


def _mask_key(path: Path) -> str:
    """The item id a mask file belongs to: its stem without the word "mask", else its folder's name."""
    return _MASK_WORD.sub("", path.stem) or path.parent.name


@register_split("Editing-Mask", ("mask_iou", "changing_rate", "bg_psnr", "bg_ssim", "bg_mse", "bg_lpips", "seconds"), rank=1)
class EditingMaskSplit(EditDataset):
    """The 200 Editing-Mask items with human masks (100 ImageNet-style, 100 Imagen-style lines).

    ``root``: a prepared local folder holding the images and masks (any layout, see
    :attr:`layout`) and, unless ``list_path`` is given, ``Editing-Mask_list.txt``; by default
    both are downloaded into the cache and verified, and the archive is extracted once (into
    ``<cache>/editing_mask/files``, atomically; later runs use that folder). Images and masks
    are matched to items by file stem, since the zip's layout is undocumented: a file is a mask
    when "mask" is in its name or a parent folder's.
    """

    name = "editing_mask"
    has_masks = True
    list_name = "Editing-Mask_list.txt"
    layout = (
        f"A dataset.root folder for editing_mask holds the authors' list {list_name} (or give it with "
        "dataset.list_path=...) and, in any sub-folders, each listed item's image <id>.jpg (or .jpeg, .png, .bmp, "
        ".webp) and its mask, a file with 'mask' in its name or in a folder's name (masks/<id>.png or "
        "<id>_mask.png; white = the region to edit)."
    )

    def __init__(self, root: str | None = None, list_path: str | None = None, cache_dir: str = "~/.cache/instdiffedit") -> None:
        cache = Path(cache_dir).expanduser() / self.name
        if root is None:
            entries = read_list(self.name, list_path, cache_dir, "dataset.list_path")
            folder = cache / "files"
            if not folder.is_dir():  # extracted once, atomically, from the verified archive
                archive = fetch(
                    EDITING_MASK_ZIP,
                    cache / "Editing-Mask.zip",
                    what="the Editing-Mask images and masks",
                    config_key="dataset.root=/path/to/unzipped/Editing-Mask",
                )
                extract_zip(archive, folder)
        else:
            folder = Path(root).expanduser()
            if not folder.is_dir():
                raise MissingFilesError(f"The Editing-Mask folder {folder} given by dataset.root does not exist. {self.layout}")
            if list_path is None and not (folder / self.list_name).is_file():
                raise MissingFilesError(f"The Editing-Mask folder {folder} given by dataset.root has no {self.list_name}. {self.layout}")
            entries = read_list(self.name, list_path or str(folder / self.list_name), cache_dir, "dataset.list_path")
        self.entries = {e.id: e for e in entries}
        images: dict[str, Path] = {}
        masks: dict[str, Path] = {}
        index = _index_images(folder)
        # Folders above every file (an archive's top folder, "Editing-Mask/") say nothing about masks.
        files = [path for paths in index.values() for path in paths]
        shared = Path(os.path.commonpath([p.parent for p in files])) if files else folder
        for stem, paths in index.items():
            for path in paths:
                if _is_mask(path, shared):
                    masks.setdefault(_mask_key(path), path)
                else:
                    images.setdefault(stem, path)
        missing = [f"{i} ({'image' if i not in images else 'mask'})" for i in self.entries if i not in images or i not in masks]
        if missing:
            found = [str(p.relative_to(folder)) for p in [*images.values(), *masks.values()]]
            raise _missing_error(self.name, missing, found, f"Check the folder {folder} (dataset.root). {self.layout}")
        self.images, self.masks = images, masks

    def item_ids(self) -> list[str]:
        return list(self.entries)

    def target_classes(self) -> list[str]:
        """The target classes of the ImageNet-style items: edit accuracy picks among these (nan for the others)."""
        return sorted({e.meta["target_class"] for e in self.entries.values() if e.kind == "imagenet"})

    def fingerprint(self, item_id: str) -> str:
        entry = self.entries[item_id]
        return fingerprint([self.images[item_id], self.masks[item_id]], [entry.target, entry.source, entry.prompt, entry.meta])

    def load(self, item_id: str) -> EditItem:
        entry = self.entries[item_id]
        image = open_rgb(self.images[item_id])
        mask, flags = open_mask(self.masks[item_id], image.size)
        return EditItem(item_id, image, entry.target, entry.source, entry.prompt, mask, {"kind": entry.kind, **entry.meta}, tuple(flags))


@register_split("ImageNet", ("lpips", "csfid", "sfid", "accuracy", "seconds"), rank=2)
class ImageNetSplit(EditDataset):
    """The FlexIT ImageNet test split: 1,092 validation images, 273 target classes x 4.

    ``root`` is the user's ImageNet validation folder (flat, or in class subfolders): every
    listed file is looked up when the split is built, and all missing ones are listed at once.
    """

    name = "imagenet"
    has_masks = False
    layout = (
        "A dataset.root folder for imagenet holds the listed ImageNet validation images under their own names "
        "(ILSVRC2012_val_00028602.JPEG, ...), flat or in class sub-folders."
    )

    def __init__(self, root: str | None, list_path: str | None = None, cache_dir: str = "~/.cache/instdiffedit") -> None:
        if root is None:
            raise MissingFilesError("The imagenet split needs your ImageNet validation folder: set dataset.root=/path/to/ILSVRC2012/val.")
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise MissingFilesError(f"The ImageNet validation folder {folder} given by dataset.root does not exist. {self.layout}")
        self.entries = {e.id: e for e in read_list(self.name, list_path, cache_dir, "dataset.list_path")}
        index = _index_images(folder)
        self.images = {i: index[i][0] for i in self.entries if i in index}
        missing = [e.meta["file"] for i, e in self.entries.items() if i not in self.images]
        if missing:
            raise _missing_error(self.name, missing, [p.name for ps in index.values() for p in ps], f"Check dataset.root={folder}. {self.layout}")

    def item_ids(self) -> list[str]:
        return list(self.entries)

    def target_classes(self) -> list[str]:
        """The split's target class names (273 in the FlexIT split): edit accuracy picks among these."""
        return sorted({e.meta["target_class"] for e in self.entries.values()})

    def fingerprint(self, item_id: str) -> str:
        entry = self.entries[item_id]
        return fingerprint([self.images[item_id]], [entry.target, entry.source, entry.meta])

    def load(self, item_id: str) -> EditItem:
        entry = self.entries[item_id]
        return EditItem(item_id, open_rgb(self.images[item_id]), entry.target, entry.source, None, None, dict(entry.meta))


@register_split("Imagen", ("lpips", "fid", "clip_score", "seconds"), rank=3)
class ImagenSplit(EditDataset):
    """The 360 Imagen prompts, one edit each.

    The original Imagen samples are not public, so by default each prompt is generated once by
    the run's base model (``steps`` steps, CFG ``guidance_scale``, ``resolution`` px) with a
    seed derived from ``seed`` and the item id, and cached per model; every row records it in
    ``meta.image_source``. ``root``: a folder of your own images named ``<id>.png`` / ``.jpg``.
    """

    name = "imagen"
    has_masks = False
    layout = (
        "A dataset.root folder for imagen holds one image per listed prompt, named by the prompt's id: <id>.png "
        "(or .jpg, .jpeg, .bmp, .webp), in any sub-folder; without dataset.root the base model generates them."
    )

    @checked_ranges
    def __init__(
        self,
        root: str | None = None,
        list_path: str | None = None,
        cache_dir: str = "~/.cache/instdiffedit",
        seed: int = 0,
        steps: Steps = 50,
        guidance_scale: float = 7.5,
        resolution: Side = 512,
    ) -> None:
        self.entries = {e.id: e for e in read_list(self.name, list_path, cache_dir, "dataset.list_path")}
        self.cache = Path(cache_dir).expanduser() / self.name
        self.seed, self.steps, self.guidance_scale, self.resolution = seed, steps, guidance_scale, resolution
        self.images: dict[str, Path] = {}
        self.folder: Path | None = None
        self.base: StableDiffusionPipeline | None = None
        if root is not None:
            self.folder = Path(root).expanduser()
            if not self.folder.is_dir():
                raise MissingFilesError(f"The Imagen image folder {self.folder} given by dataset.root does not exist. {self.layout}")
            index = _index_images(self.folder)
            self.images = {i: index[i][0] for i in self.entries if i in index}
            missing = [i for i in self.entries if i not in self.images]
            if missing:
                raise _missing_error(self.name, missing, index, f"Check dataset.root={self.folder}. {self.layout}")

    def item_ids(self) -> list[str]:
        return list(self.entries)

    def prepare(self, base: StableDiffusionPipeline) -> None:
        """Keep the base model to generate the inputs (unless the user gave a folder)."""
        self.base = base

    def _generated(self, entry: ListEntry) -> tuple[Path, str]:
        if self.base is None:
            raise RuntimeError("ImagenSplit.prepare(base) must be called before generated items are loaded.")
        model = str(self.base.config._name_or_path)
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{entry.id}".encode()).digest()[:8], "little") & (2**63 - 1)
        key = hashlib.sha256(f"{model}|{self.steps}|{self.guidance_scale}|{self.resolution}".encode()).hexdigest()[:12]
        path = self.cache / key / f"{checked_id(entry.id)}.png"
        if not path.exists():
            generator = torch.Generator("cpu").manual_seed(seed)
            image = self.base(
                entry.prompt,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                height=self.resolution,
                width=self.resolution,
                generator=generator,
            ).images[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            # A temporary name no id's file can have (no ".png" ending), renamed once whole.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".generating-", suffix=".partial", delete=False) as partial:
                image.save(partial, format="PNG")
            os.replace(partial.name, path)
        return path, f"generated by {model} from the prompt (seed {seed}, {self.steps} steps, CFG {self.guidance_scale})"

    def fingerprint(self, item_id: str) -> str:
        """The user's image file, or the recipe of the generated one (model, seed, steps, CFG, size)."""
        entry = self.entries[item_id]
        texts = [entry.target, entry.source, entry.prompt]
        if self.folder is not None:
            return fingerprint([self.images[item_id]], texts)
        model = None if self.base is None else str(self.base.config._name_or_path)
        return fingerprint([], [*texts, model, self.seed, self.steps, self.guidance_scale, self.resolution])

    def load(self, item_id: str) -> EditItem:
        entry = self.entries[item_id]
        if self.folder is not None:
            path, source = self.images[item_id], f"user folder {self.folder}"
        else:
            path, source = self._generated(entry)
        return EditItem(item_id, open_rgb(path), entry.target, entry.source, entry.prompt, None, {"image_source": source})
