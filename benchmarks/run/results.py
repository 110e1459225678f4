"""The run's results table: one JSON line per (item, method, config), appended as soon as it exists.

JSON Lines rather than CSV because rows differ in columns (a failed item has no metrics) and
because appending a line is atomic enough: a crash loses at most the row being written. A torn
last line (a process killed mid-write) is skipped on reading, and the next writer moves it to
``<file>.torn`` before its first append, so every append starts on a fresh line and no byte
is dropped unseen.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.run.writes import writing

log = logging.getLogger(__name__)

KEY = ("item_id", "method", "config_id")
TORN_SUFFIX = ".torn"
BOOKKEEPING_COLUMNS = frozenset({"seed", "batch_size", "finished_at"})
"""Numeric columns that are no result: the item's seed, how many items shared its UNet calls, when it finished."""
NON_RESULT_PREFIXES = ("param.", "seconds_", "meta.")
"""Column families that are no per-item result: settings, the phases' seconds, the item's own data."""
COST_COLUMNS = ("seconds", "denoiser_evals")
RENAMED_COLUMNS = {"unet_evals": "denoiser_evals"}
"""Columns of rows written by earlier versions, by their names now: every reader sees the new names."""


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """The numeric per-item results among ``rows``' columns in display order: metrics, then cost."""
    metrics = [
        c
        for c in rows.columns
        if pd.api.types.is_numeric_dtype(rows[c]) and c not in BOOKKEEPING_COLUMNS and c not in COST_COLUMNS and not c.startswith(NON_RESULT_PREFIXES)
    ]
    return metrics + [c for c in COST_COLUMNS if c in rows]


class ResultsFileError(ValueError):
    """A file named like a results file whose rows are not a run's rows; the message names the file."""


def one_row_per_key(rows: Iterable[dict]) -> list[dict]:
    """One row per (item, method, config) of ``rows``: the last ``ok`` row if any, else the last row.

    The rule of every reader (:meth:`ResultsTable.frame`, :func:`benchmarks.run.folder.read_results`,
    the merge): a retried item's success replaces its failure, and a failure read after a success
    (another shard count's file, say) never hides it. Rows keep the order their keys first appeared in.
    """
    kept: dict[tuple, dict] = {}
    for row in rows:
        try:
            key = tuple(row[k] for k in KEY)
        except KeyError as error:
            raise ValueError(f"A results row lacks the key column {error}; is this a results file of this harness?") from None
        previous = kept.get(key)
        if previous is None or row.get("status") == "ok" or previous.get("status") != "ok":
            kept[key] = row
    return list(kept.values())


class ResultsTable:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._repaired = False

    @property
    def torn_path(self) -> Path:
        """Where :meth:`repair` keeps torn lines: ``results.jsonl.torn`` beside ``results.jsonl``."""
        return self.path.with_name(self.path.name + TORN_SUFFIX)

    def repair(self) -> Path | None:
        """Move a torn last line (the file does not end in a newline) to :attr:`torn_path`.

        Only the file's writer calls this (the runner, before its first append): a reader may
        see a live writer's half-written line and must leave it alone. Returns the ``.torn``
        file when something was moved.
        """
        self._repaired = True
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return None
        keep = data.rfind(b"\n") + 1
        with writing(self.torn_path), self.torn_path.open("ab") as torn:
            torn.write(data[keep:] + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        with writing(self.path):
            os.truncate(self.path, keep)
        log.warning(
            "%s ended in a torn line (a run was stopped while writing it); moved it to %s, and its item is done again.",
            self.path,
            self.torn_path,
        )
        return self.torn_path

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and force it to disk before returning; the first append repairs a torn tail.

        A row that cannot be written (a full disk, a read-only folder) raises
        :class:`~benchmarks.run.writes.RunFolderError`: at most that row's torn line is left,
        which the next writer moves aside.
        """
        with writing(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._repaired:
            self.repair()
        line = json.dumps(row, allow_nan=True, default=str) + "\n"
        with writing(self.path), self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict[str, Any]]:
        """The file's rows, old column names read as their new ones (:data:`RENAMED_COLUMNS`). A torn
        last line (no newline after it) is skipped with a warning.

        Raises :class:`ResultsFileError` for a file this harness did not write: a line before the
        last that is not JSON text, or any line that is not an object with the key columns.
        """
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.splitlines()
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line.decode("utf-8"))
            except ValueError:  # not UTF-8, or not JSON
                if number == len(lines) and not data.endswith(b"\n"):
                    log.warning(
                        "Skipping the torn last line of %s (a run was stopped while writing it; the next run writing the file moves it to %s).",
                        self.path,
                        self.torn_path.name,
                    )
                    continue
                raise ResultsFileError(self._foreign(number, "is not a line of JSON text")) from None
            if not isinstance(row, dict):
                raise ResultsFileError(self._foreign(number, "is not a JSON object"))
            if missing := [k for k in KEY if k not in row]:
                raise ResultsFileError(self._foreign(number, f"lacks the key column(s) {', '.join(missing)}"))
            rows.append({RENAMED_COLUMNS.get(column, column): value for column, value in row.items()})
        return rows

    def _foreign(self, number: int, problem: str) -> str:
        return f"{self.path} is not a results file of run.py: line {number} {problem}. Move it out of the run folder, or rerun the run that wrote it."

    def frame(self) -> pd.DataFrame:
        """One row per key (see :func:`one_row_per_key`: a retried item's success replaces its failure)."""
        return pd.DataFrame(one_row_per_key(self.rows()))

    def completed(self, method: str, config_id: str) -> set[str]:
        """Ids of items already done successfully for this method and config."""
        return {row["item_id"] for row in self.rows() if row.get("method") == method and row.get("config_id") == config_id and row.get("status") == "ok"}
