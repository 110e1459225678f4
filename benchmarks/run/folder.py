"""A run folder: every name in it, and the one reader of its results.

A run writes into one folder, named by its settings (:func:`run_folder_name`); every shard of
the run writes into the same folder, its own files tagged ``shard-003-of-016``
(:class:`Shard`, :func:`shard_tag`)::

    results.jsonl             one row per (item, method, config), appended as computed; shards:
    results.shard-003-of-016.jsonl      results.shard-003-of-016.jsonl ...  (:mod:`benchmarks.run.results`)
    results.jsonl.torn        torn last lines, moved aside by the next writer
    results.merged.jsonl      the merged rows of all of them (``python -m benchmarks.run.merge``)
    summary.csv               the printed summary, corpus metrics included (shards: summary.shard-...)
    items.txt                 the split's item ids
    results.jsonl.lock        held by the process writing results.jsonl (shards: results.shard-...jsonl.lock)
    results.jsonl.stale       rows set aside because their item's files or texts changed since (the item is done again)
    images/<id>/edit.png      the edit; mask.png, input.png, gt.png, steps.npz beside it: a folder per item,
                              so no two items' files can meet (folders of earlier versions, which named
                              them images/<id>.png, <id>.mask.png, ..., are still read)
    run.log, .hydra/          Hydra's (their shard tags are set in conf/config.yaml; a job that never
                              started removes them again: :func:`discard_unstarted_job`)

Every name is made here and parsed back here, so writers and readers never drift apart:
:class:`RunFolder` says where a folder holds each file, :class:`ItemImages` the files of each item
under ``images/``. :func:`read_results` is how anything reads results (the merge, the report, the toy card, the
sweep summary): one row per (item, method, config), the rule of
:func:`benchmarks.run.results.one_row_per_key` applied over every file read. This module
imports nothing heavier than pandas: ``run.py`` names Hydra's files with it before any model
code is imported.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import PIL.Image
from omegaconf import DictConfig, OmegaConf

from benchmarks.data.ids import checked_id
from benchmarks.run.results import KEY, ResultsFileError, ResultsTable, one_row_per_key
from benchmarks.run.writes import write_text_atomically, writing

if TYPE_CHECKING:
    import torch

    from benchmarks.data.items import EditDataset, EditItem
    from instdiffedit.types import EditResult

RESULTS_STEM = "results"
SUMMARY_STEM = "summary"
MERGED_NAME = "results.merged.jsonl"
ITEMS_FILE = "items.txt"
IMAGES_DIR = "images"

EDIT, MASK, INPUT, GROUND_TRUTH, STEPS = "edit.png", "mask.png", "input.png", "gt.png", "steps.npz"
"""What a run saves per item in its folder ``images/<id>/``: the edit, the method's mask, the
input, its ground-truth mask and (InstDiffEdit) the per-step masks."""
_LEGACY_SUFFIXES = {EDIT: ".png", MASK: ".mask.png", INPUT: ".input.png", GROUND_TRUTH: ".gt.png", STEPS: ".steps.npz"}
"""The names earlier versions gave the same files, ``images/<id><suffix>``: read, never written (two
ids could meet there: ``cat``'s mask and ``cat.mask``'s edit were both ``cat.mask.png``)."""
STALE_SUFFIX = ".stale"

MAX_RUN_NAME_BYTES = 200  # file systems allow 255 bytes per path component
_ESCAPES = {"%": "%25", "/": "%2F", "\\": "%5C"}
_SHARD_FILE = re.compile(r"^results(?:\.shard-(\d{3,})-of-(\d{3,}))?\.jsonl$")


def run_folder_name(override_dirname: str) -> str:
    """The run folder's name from Hydra's ``override_dirname`` (``"default"`` for a run without overrides).

    A path in an override (``dataset.root=/data/em``) must not nest folders: ``/`` and ``\\``
    are percent-encoded, and ``%`` too, so that two different overrides never share a name
    (``dataset.root=%2Fdata%2Fem``). Names without these characters are unchanged, so the
    folders of earlier runs resume. A name over :data:`MAX_RUN_NAME_BYTES` keeps its beginning
    and ends with a hash of the whole.
    """
    if not override_dirname:
        return "default"
    name = "".join(_ESCAPES.get(character, character) for character in override_dirname)
    encoded = name.encode()
    if len(encoded) <= MAX_RUN_NAME_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    head = encoded[: MAX_RUN_NAME_BYTES - len(digest) - 1].decode(errors="ignore")
    return re.sub(r"%[0-9A-F]?$", "", head) + "-" + digest  # never half an escape


def shard_tag(index: int, count: int, prefix: str = "") -> str:
    """``""`` for an unsharded run, else ``prefix + "shard-003-of-016"``: what a shard adds to its file names."""
    return "" if int(count) == 1 else f"{prefix}shard-{int(index):03d}-of-{int(count):03d}"


def shard_file_name(stem: str, suffix: str, index: int = 0, count: int = 1) -> str:
    """``results.jsonl`` unsharded, ``results.shard-003-of-016.jsonl`` for shard 3 of 16."""
    return f"{stem}{shard_tag(index, count, '.')}.{suffix}"


def parse_results_name(name: str) -> tuple[int, int] | None:
    """``(index, count)`` of a results file name (``(0, 1)`` for ``results.jsonl``); None for other files."""
    match = _SHARD_FILE.match(name)
    if match is None:
        return None
    if match.group(1) is None:
        return 0, 1
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class Shard:
    """Items ``index, index + count, index + 2 count, ...`` of a split: disjoint, and together complete."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard.index must be in [0, shard.count), got index={self.index}, count={self.count}.")

    def select(self, item_ids: Sequence[str]) -> list[str]:
        return list(item_ids[self.index :: self.count])

    @property
    def results_name(self) -> str:
        return self.file_name(RESULTS_STEM, "jsonl")

    @property
    def lock_name(self) -> str:
        """The lock file of the shard's results (:mod:`benchmarks.run.lock`): one writer per file."""
        return f"{self.results_name}.lock"

    @property
    def summary_name(self) -> str:
        return self.file_name(SUMMARY_STEM, "csv")

    def file_name(self, stem: str, suffix: str) -> str:
        """``stem.suffix`` unsharded, ``stem.shard-003-of-016.suffix`` for shard 3 of 16: shards share a folder."""
        return shard_file_name(stem, suffix, self.index, self.count)


# -- Hydra's files of a job ------------------------------------------------------------------


HYDRA_SAVED_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
"""What Hydra saves into a job's ``output_subdir`` when the job starts."""


def discard_unstarted_job(hydra_cfg: DictConfig, stop: Path) -> None:
    """Remove what Hydra wrote for a job that never started, if that is all its folder holds.

    Hydra creates the job's folder, its ``output_subdir`` (``.hydra``) and its log file before
    the job runs. When the folder holds nothing else (no results of an earlier run), those are
    removed, and then every folder left empty up to ``stop`` (the output root), so a run that
    never started leaves no folder behind.
    """
    out = Path(hydra_cfg.runtime.output_dir).resolve()
    own: list[Path] = []
    log_file = OmegaConf.select(hydra_cfg, "job_logging.handlers.file.filename")
    if log_file is not None:
        own.append(Path(log_file).resolve())
    saved = None if hydra_cfg.output_subdir is None else (out / hydra_cfg.output_subdir).resolve()
    if saved is not None:
        own += [saved / name for name in HYDRA_SAVED_FILES]
    if not out.is_dir() or any(p not in own for p in out.rglob("*") if not p.is_dir()):
        return
    for handler in list(logging.getLogger().handlers):  # Hydra's file handler holds the log open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve() in own:
            handler.close()
            logging.getLogger().removeHandler(handler)
    for path in own:
        path.unlink(missing_ok=True)
    stop, folder = stop.resolve(), saved or out
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            break
        folder = folder.parent


# -- one run folder -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """One run folder: the files it holds, each named as runs write them (see the module's layout).

    A folder that does not exist yet holds nothing: no results files, no item list.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def images(self) -> ItemImages:
        """``images/``: every item's saved files."""
        return ItemImages(self.path / IMAGES_DIR)

    @property
    def items_file(self) -> Path:
        return self.path / ITEMS_FILE

    @property
    def merged_file(self) -> Path:
        """``results.merged.jsonl``: the merged rows of every results file (``python -m benchmarks.run.merge``)."""
        return self.path / MERGED_NAME

    def results_file(self, shard: Shard) -> Path:
        """The shard's results file (``results.jsonl`` unsharded)."""
        return self.path / shard.results_name

    def lock_file(self, shard: Shard) -> Path:
        """The lock of the shard's results file (:mod:`benchmarks.run.lock`): one writer per file."""
        return self.path / shard.lock_name

    def summary_file(self, shard: Shard) -> Path:
        """The shard's summary. Corpus metrics over the whole split are read from the unsharded one (``summary.csv``):

        a shard's ``summary.shard-*.csv`` holds corpus metrics over the shard's own slice only; the
        README says how to compute them over the whole split (an unsharded run after the merge).
        """
        return self.path / shard.summary_name

    def shard_summaries(self) -> list[Path]:
        """The shards' summaries (``summary.shard-*-of-*.csv``)."""
        return sorted(self.path.glob(f"{SUMMARY_STEM}.shard-*-of-*.csv"))

    def write_item_ids(self, item_ids: Sequence[str]) -> None:
        """Record the whole split's item ids (one per line) so a merge can tell which items are missing.

        Every shard writes the same list; it goes through a temporary file and a rename, so shards
        writing at the same moment never leave a torn file.
        """
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{item_id}\n" for item_id in item_ids)
        if self.items_file.exists() and self.items_file.read_text(encoding="utf-8") == text:
            return
        write_text_atomically(self.items_file, text)

    def item_ids(self) -> list[str] | None:
        """The split's item ids as recorded by :meth:`write_item_ids`, or None for a folder without a list."""
        if not self.items_file.exists():
            return None
        return [line for line in self.items_file.read_text(encoding="utf-8").splitlines() if line]

    def results_files(self) -> list[tuple[int, int, Path]]:
        """``(index, count, path)`` of every results file, unsharded first, then by count and index."""
        if not self.path.is_dir():
            return []
        found = []
        for path in self.path.iterdir():
            parsed = parse_results_name(path.name)
            if parsed is not None and path.is_file():
                found.append((*parsed, path))
        return sorted(found, key=lambda f: (f[1], f[0]))

    def files_read(self) -> list[Path]:
        """The files whose rows are the run's: its results files, or, in a folder that holds only the
        merge of them (copied from a cluster, say), ``results.merged.jsonl``."""
        files = [path for _, _, path in self.results_files()]
        return files or ([self.merged_file] if self.merged_file.is_file() else [])

    def completed_elsewhere(self, method: str, config_id: str, own_file: str | os.PathLike) -> set[str]:
        """Items done (``ok``) for ``method`` and ``config_id`` in the results files other than ``own_file``.

        A shard skips them, so re-running a run with another ``shard.count`` (or unsharded, e.g.
        for corpus metrics over the whole split) only computes what no shard has done.
        """
        own = Path(own_file).name
        return {item for _, _, path in self.results_files() if path.name != own for item in ResultsTable(path).completed(method, config_id)}


# -- the images of each item -----------------------------------------------------------------


@dataclass(frozen=True)
class ItemImages:
    """A run's ``images/``: a folder per item, ``<id>/edit.png`` and the others (see :data:`EDIT`), so no
    two items' files can meet. A folder of an earlier version is read by its names (``<id>.png``,
    ``<id>.input.png``, ...), never written."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def item_folder(self, item_id: str) -> Path:
        """``images/<item_id>``: the folder of every file a run saves for the item, and of no other item's."""
        return self.path / checked_id(item_id)

    def file(self, item_id: str, kind: str = EDIT) -> Path:
        """``images/<item_id>/<kind>``: where a run saves one of the item's files."""
        return self.item_folder(item_id) / kind

    def saved(self, item_id: str, kind: str = EDIT) -> Path | None:
        """The item's saved ``kind`` file, under its current name or an earlier version's, or None."""
        for path in (self.file(item_id, kind), self.path / f"{item_id}{_LEGACY_SUFFIXES[kind]}"):
            if path.is_file():
                return path
        return None

    def saved_items(self) -> list[str]:
        """The ids of the items whose images are here (those with a saved input), sorted."""
        current = {p.parent.name for p in self.path.glob(f"*/{INPUT}")}
        legacy_input = _LEGACY_SUFFIXES[INPUT]
        legacy = {p.name.removesuffix(legacy_input) for p in self.path.glob(f"*{legacy_input}") if p.is_file()}
        return sorted(current | legacy)

    def save(self, item: EditItem, result: EditResult) -> None:
        """Everything a report draws for the item, beside the edit: the edit, the method's mask, the
        input and its ground-truth mask (so reports never reload the split), the per-step masks."""
        import numpy

        directory = self.item_folder(item.id)
        directory.mkdir(parents=True, exist_ok=True)
        result.image.save(directory / EDIT)
        item.image.convert("RGB").save(directory / INPUT)
        if result.mask is not None:
            _mask_image(result.mask).save(directory / MASK)
        if item.gt_mask is not None:
            _mask_image(item.gt_mask).save(directory / GROUND_TRUTH)
        if result.mask_history is not None:
            numpy.savez_compressed(directory / STEPS, masks=result.mask_history.numpy())

    def saved_pairs(self, dataset: EditDataset, item_ids: Iterable[str] | None = None) -> Iterator[tuple[EditItem, PIL.Image.Image]]:
        """``(item, edited image)`` for every item (of ``item_ids``, default all) whose edit was saved
        here: what corpus metrics read, so they cover resumed runs too. Items without one (failed or
        not yet run) are skipped. Lazy: one image in memory at a time."""
        for item_id in dataset.item_ids() if item_ids is None else item_ids:
            path = self.saved(item_id, EDIT)
            if path is not None:
                with PIL.Image.open(path) as image:
                    edited = image.convert("RGB")
                yield dataset.load(item_id), edited


def _mask_image(mask: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray((mask.float().numpy() * 255).round().astype("uint8"))


# -- readers of many run folders -------------------------------------------------------------


def find_run_dirs(paths: Iterable[str | os.PathLike], *, merged_only: bool = False) -> list[Path]:
    """Every folder at or below ``paths`` that holds a results file (a run folder); a file stands for
    its folder. ``merged_only``: also folders that hold only ``results.merged.jsonl``.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    dirs: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"No such results folder: {path}")
        candidates = [path.parent] if path.is_file() else [path, *(p for p in path.rglob("*") if p.is_dir())]
        for folder in map(RunFolder, candidates):
            if folder.files_read() if merged_only else folder.results_files():
                dirs.add(folder.path)
    return sorted(dirs)


def _checked_rows(path: Path, required: Sequence[str]) -> list[dict]:
    rows = ResultsTable(path).rows()
    columns = {column for row in rows for column in row}
    missing = [c for c in required if c not in columns]
    if rows and missing:
        raise ResultsFileError(
            f"{path} is not a results file of run.py: its rows lack {', '.join(missing)}. Remove it from the folders read or rerun the run that wrote it."
        )
    return [{**row, "run_dir": str(path.parent)} for row in rows]


def read_results(paths: Iterable[str | os.PathLike], required: Sequence[str] = KEY) -> pd.DataFrame:
    """The rows of every run folder at or below ``paths`` as one frame, one row per (item, method,
    config): an ``ok`` row wins over a failure, and among equals the last one read (run folders in
    sorted order, each one's unsharded file first, then its shards by count and index). Each row
    carries ``run_dir``, the folder it was read from, and ``run_dirs``, every folder holding a row of
    its key (a configuration that ran under two names, such as a swept value equal to the default
    and the default run, is in both). A folder that holds only ``results.merged.jsonl``
    (the merge, copied without its shards) is read from that.

    ``required``: columns every file's rows must have (:class:`ResultsFileError` names the file
    otherwise). Empty folders give an empty frame; a path that does not exist raises ``FileNotFoundError``.
    """
    run_dirs = find_run_dirs(paths, merged_only=True)
    rows = [row for run_dir in run_dirs for path in RunFolder(run_dir).files_read() for row in _checked_rows(path, required)]
    folders: dict[tuple, set[str]] = {}
    for row in rows:
        folders.setdefault(tuple(row.get(k) for k in KEY), set()).add(row["run_dir"])
    kept = one_row_per_key(rows)
    return pd.DataFrame([{**row, "run_dirs": tuple(sorted(folders[tuple(row[k] for k in KEY)]))} for row in kept])


def find_image(run_dirs: Sequence[str | os.PathLike], item_id: str, kind: str = EDIT) -> Path | None:
    """The item's saved ``kind`` file in the first of ``run_dirs`` that has it (a configuration may span folders)."""
    for run_dir in run_dirs:
        if (path := RunFolder(run_dir).images.saved(item_id, kind)) is not None:
            return path
    return None
