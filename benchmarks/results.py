"""The run's results table: one JSON line per (item, method, config), appended as soon as it exists.

JSON Lines rather than CSV because rows differ in columns (a failed item has no metrics) and
because appending a line is atomic enough: a crash loses at most the row being written, and
a torn last line is skipped on reading.
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


class ResultsTable:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and force it to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
                log.warning("Skipping unreadable line %d of %s (a run was interrupted while writing it).", number, self.path)
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
