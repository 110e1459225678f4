"""Reading result folders: every results file under the given paths, as one tidy pandas frame.

A results folder is what ``run.py`` writes (``results.jsonl`` or its shards
``results.shard-XXX-of-YYY.jsonl``, ``summary.csv``, ``images/``); a multirun folder holds many.
The report takes any mix of both and never needs to know how they were launched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.results import KEY, ResultsTable
from benchmarks.sharding import read_item_list

RESULT_FILES = "results*.jsonl"
REQUIRED_COLUMNS = ("item_id", "method", "config_id", "dataset", "status")
CORPUS_COLUMNS = ("fid", "sfid", "csfid")
"""Metrics over a whole run: the runner keeps them in summary.csv only (one value per config, no items)."""


class ReportError(Exception):
    """A problem with the report's input that the user fixes; the message names the problem and the fix."""


@dataclass
class Results:
    """The rows of every results file found, and the corpus metrics of their runs.

    ``rows``: one row per (item, method, config), the latest one winning (as in a results file),
    with ``model`` (from ``param.model``) and ``run_dir`` (the folder it was read from) added.
    ``corpus``: per (method, config_id), the columns of :data:`CORPUS_COLUMNS` found in the runs'
    summary.csv files. ``split_items``: per run folder that recorded it (``items.txt``), the
    split's item ids, so that a run which did not finish can be told apart.
    """

    rows: pd.DataFrame
    corpus: pd.DataFrame
    split_items: dict[str, list[str]] = field(default_factory=dict)


def find_result_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Every results file in or under ``paths`` (a results file itself is accepted too)."""
    if not paths:
        raise ReportError("No result folder given: pass one or more run folders or a multirun folder, e.g. outputs/.")
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path} does not exist: pass a folder that run.py wrote (it prints 'Results: <file>').")
        found += [path] if path.is_file() else sorted(path.rglob(RESULT_FILES))
    if not found:
        where = ", ".join(map(str, paths))
        raise ReportError(
            f"No results files ({RESULT_FILES}) under {where}: run `python run.py ...` first "
            "(see README, 'Tables and figures'), or point the report at the folder it wrote."
        )
    return found


def _read(path: Path) -> pd.DataFrame:
    table = ResultsTable(path)
    columns = {column for row in table.rows() for column in row}
    if not columns:
        return pd.DataFrame()
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ReportError(
            f"{path} is not a results file of run.py: its rows lack {', '.join(missing)}. "
            "Remove it from the report's folders or rerun the run that wrote it."
        )
    frame = table.frame()
    frame["run_dir"] = str(path.parent)
    return frame


def _corpus(folders: Iterable[Path]) -> pd.DataFrame:
    parts = []
    for folder in folders:
        summary = folder / "summary.csv"
        if summary.is_file():
            frame = pd.read_csv(summary)
            columns = [c for c in CORPUS_COLUMNS if c in frame]
            if columns and {"method", "config_id"} <= set(frame.columns):
                parts.append(frame[["method", "config_id", *columns]])
    if not parts:
        return pd.DataFrame(columns=["method", "config_id"]).set_index(["method", "config_id"])
    corpus = pd.concat(parts).drop_duplicates(subset=["method", "config_id"], keep="last")
    return corpus.set_index(["method", "config_id"])


def load_results(paths: Sequence[str | os.PathLike]) -> Results:
    """Read every results file under ``paths``; raise :class:`ReportError` when there is nothing to report."""
    files = find_result_files(paths)
    frames = [frame for frame in map(_read, files) if not frame.empty]
    if not frames:
        raise ReportError(
            f"The results files under {', '.join(map(str, paths))} hold no rows yet ({len(files)} empty file(s)): "
            "let a run finish at least one item, then report again."
        )
    rows = pd.concat(frames, ignore_index=True).drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)
    rows["model"] = rows["param.model"].fillna("") if "param.model" in rows else ""
    rows["flags"] = rows["flags"].fillna("") if "flags" in rows else ""
    folders = {f.parent for f in files}
    split_items = {str(folder): items for folder in folders if (items := read_item_list(folder)) is not None}
    return Results(rows=rows, corpus=_corpus(folders), split_items=split_items)
