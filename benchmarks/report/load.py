"""Reading result folders for the report: every run folder under the given paths, as one tidy pandas frame.

A run folder is what ``run.py`` writes (:mod:`benchmarks.run.folder` names every file in it and
reads its rows); a multirun folder holds many. The report takes any mix of both and never needs
to know how they were launched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.run.folder import RESULTS_STEM, ResultsFileError, RunFolder, Shard, find_run_dirs, read_results
from benchmarks.run.results import KEY

REQUIRED_COLUMNS = (*KEY, "dataset", "status")
CORPUS_COLUMNS = ("fid", "sfid", "csfid")
"""Metrics over a whole run: the runner keeps them in summary.csv only (one value per config, no items)."""


class ReportError(Exception):
    """A problem with the report's input that the user fixes; the message names the problem and the fix."""


@dataclass
class Results:
    """The rows of every run folder found, and the corpus metrics of their runs.

    ``rows``: one row per (item, method, config), as :func:`benchmarks.run.folder.read_results`
    reads them, with ``model`` (from ``param.model``) and ``run_dir`` (the folder it was read
    from). ``corpus``: per (method, config_id), the columns of :data:`CORPUS_COLUMNS` found in
    the runs' summaries over the whole split. ``split_items``: per run folder that recorded it
    (``items.txt``), the split's item ids, so that a run which did not finish can be told apart.
    ``notes``: what was read but not shown, and why (corpus metrics only a shard computed).
    """

    rows: pd.DataFrame
    corpus: pd.DataFrame
    split_items: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _run_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Every run folder in or under ``paths`` (a results file stands for its folder)."""
    if not paths:
        raise ReportError("No result folder given: pass one or more run folders or a multirun folder, e.g. outputs/.")
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path} does not exist: pass a folder that run.py wrote (it prints 'Results: <file>').")
    run_dirs = find_run_dirs(paths, merged_only=True)
    if not run_dirs:
        where = ", ".join(map(str, paths))
        raise ReportError(
            f"No results files ({RESULTS_STEM}*.jsonl) under {where}: run `python run.py ...` first "
            "(see README, 'Tables and figures'), or point the report at the folder it wrote."
        )
    return run_dirs


def _corpus(folders: Iterable[Path]) -> tuple[pd.DataFrame, list[str]]:
    """The corpus metrics of each run over its whole split, and a note per run that has only shards' values."""
    parts, notes = [], []
    for folder in map(RunFolder, folders):
        summary = folder.summary_file(Shard())
        if summary.is_file():
            frame = pd.read_csv(summary)
            columns = [c for c in CORPUS_COLUMNS if c in frame]
            if columns and {"method", "config_id"} <= set(frame.columns):
                parts.append(frame[["method", "config_id", *columns]])
        elif any(set(CORPUS_COLUMNS) & set(pd.read_csv(path, nrows=0).columns) for path in folder.shard_summaries()):
            notes.append(
                f"corpus metrics of {folder.path}: only its shards computed them, each over its own slice "
                f"({folder.shard_summaries()[0].name}, ...); run it unsharded after the merge to compute them over the whole split."
            )
    if not parts:
        return pd.DataFrame(columns=["method", "config_id"]).set_index(["method", "config_id"]), notes
    corpus = pd.concat(parts).drop_duplicates(subset=["method", "config_id"], keep="last")
    return corpus.set_index(["method", "config_id"]), notes


def load_results(paths: Sequence[str | os.PathLike]) -> Results:
    """Read every run folder under ``paths``; raise :class:`ReportError` when there is nothing to report."""
    run_dirs = _run_dirs(paths)
    try:
        rows = read_results(run_dirs, required=REQUIRED_COLUMNS)
    except ResultsFileError as error:
        raise ReportError(str(error)) from None
    if rows.empty:
        raise ReportError(f"The results files under {', '.join(map(str, paths))} hold no rows yet: let a run finish at least one item, then report again.")
    rows["model"] = rows["param.model"].fillna("") if "param.model" in rows else ""
    rows["flags"] = rows["flags"].fillna("") if "flags" in rows else ""
    split_items = {str(folder): items for folder in run_dirs if (items := RunFolder(folder).item_ids()) is not None}
    corpus, notes = _corpus(run_dirs)
    return Results(rows=rows, corpus=corpus, split_items=split_items, notes=notes)
