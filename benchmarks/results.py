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
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

KEY = ("item_id", "method", "config_id")
TORN_SUFFIX = ".torn"
BOOKKEEPING_COLUMNS = frozenset({"seed", "batch_size", "finished_at"})
"""Numeric columns that are no result: the item's seed, how many items shared its UNet calls, when it finished."""
NON_RESULT_PREFIXES = ("param.", "seconds_", "meta.")
"""Column families that are no per-item result: settings, the phases' seconds, the item's own data."""
COST_COLUMNS = ("seconds", "unet_evals")


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """The numeric per-item results among ``rows``' columns in display order: metrics, then cost."""
    metrics = [
        c for c in rows.columns
        if pd.api.types.is_numeric_dtype(rows[c]) and c not in BOOKKEEPING_COLUMNS and c not in COST_COLUMNS
        and not c.startswith(NON_RESULT_PREFIXES)
    ]
    return metrics + [c for c in COST_COLUMNS if c in rows]


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
        with self.torn_path.open("ab") as torn:
            torn.write(data[keep:] + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        os.truncate(self.path, keep)
        log.warning(
            "%s ended in a torn line (a run was stopped while writing it); moved it to %s, and its item is done again.",
            self.path, self.torn_path,
        )
        return self.torn_path

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and force it to disk before returning; the first append repairs a torn tail."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._repaired:
            self.repair()
        line = json.dumps(row, allow_nan=True, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning(
                    "Skipping unreadable line %d of %s (a run was stopped while writing it; if it is the last "
                    "line, the next run writing the file moves it to %s).", number, self.path, self.torn_path.name,
                )
        return rows

    def frame(self) -> pd.DataFrame:
        """All rows, the latest row per key winning (a retried item replaces its failure)."""
        frame = pd.DataFrame(self.rows())
        if frame.empty:
            return frame
        return frame.drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)

    def completed(self, method: str, config_id: str) -> set[str]:
        """Ids of items already done successfully for this method and config."""
        return {
            row["item_id"]
            for row in self.rows()
            if row.get("method") == method and row.get("config_id") == config_id and row.get("status") == "ok"
        }
