"""Tables per edit type: a split whose items carry an edit type (PIE-Bench's 10) gets its table broken down by it.

The rows of each edit type, then of all items, for every configuration, with the split's
metrics (its paper layout where it has one): ``tables/<split>_by_edit_type.{md,tex,csv}``.
"""

from __future__ import annotations

import pandas as pd

from benchmarks.report.load import CORPUS_COLUMNS
from benchmarks.report.tables import Reporter, Table, metric_columns, split_layout

EDIT_TYPE = "meta.edit_type"
EDIT_TYPE_NAME = "meta.edit_type_name"
OVERALL = "all"


def _type_key(value: str) -> tuple[int, str]:
    return (int(value), "") if str(value).isdigit() else (1 << 30, str(value))


def edit_type_table(reporter: Reporter, dataset: str) -> Table | None:
    """The split's metrics per edit type and over all items; None when its rows carry no edit type."""
    rows = reporter.rows[reporter.rows["dataset"] == dataset]
    if EDIT_TYPE not in rows or rows[EDIT_TYPE].isna().all():
        return None
    title, metrics = split_layout(dataset)
    metrics = [m for m in (metrics or metric_columns(rows)) if m not in CORPUS_COLUMNS]
    typed = rows[rows[EDIT_TYPE].notna()]
    names = typed.groupby(EDIT_TYPE)[EDIT_TYPE_NAME].first() if EDIT_TYPE_NAME in typed else pd.Series(dtype=str)
    parts = []
    for type_id in sorted(typed[EDIT_TYPE].astype(str).unique(), key=_type_key):
        numbers = reporter.stats(typed[typed[EDIT_TYPE].astype(str) == type_id], metrics)
        name = names.get(type_id)
        numbers.insert(0, "edit_type", f"{type_id} {name}" if isinstance(name, str) else type_id)
        parts.append(numbers)
    overall = reporter.stats(rows, metrics)
    overall.insert(0, "edit_type", OVERALL)
    numbers = pd.concat([*parts, overall], ignore_index=True)
    notes = reporter._notes(numbers, metrics, False)
    if (rows["status"] != "ok").any():
        notes.append(f"Failed items carry no edit type in their rows: they count in '{OVERALL}' only.")
    display = reporter._display(numbers, metrics, leading=[("edit_type", "Edit type")])
    return Table(f"{dataset}_by_edit_type", f"{title} by edit type", numbers, display, notes)


def edit_type_tables(reporter: Reporter) -> list[Table]:
    """One per-edit-type table for every split whose rows carry an edit type."""
    tables = (edit_type_table(reporter, dataset) for dataset in sorted(reporter.rows["dataset"].unique()))
    return [table for table in tables if table is not None]
