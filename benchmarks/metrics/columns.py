"""What the result columns mean: each metric declares the columns it writes where it is computed
(:func:`register_metric` on its class or function: report header, number format and the note
printed under every run's and every sweep's summary), the project's metrics as a plugin's."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from instdiffedit.registry import Registry, declared

M = TypeVar("M", bound=Callable)


@dataclass(frozen=True)
class Column:
    """One column a metric writes: ``label`` heads it in reports (with its unit), ``fmt`` formats its
    numbers, ``note`` (optional) says what it means under every summary."""

    name: str
    label: str
    fmt: str = ".3g"
    note: str | None = None


COLUMNS: Registry[Column] = Registry("metric column")
"""Every declared column, in the order declared: the reports show a split's metrics in this order
where the split declares no columns of its own."""


def register_metric(*columns: Column) -> Callable[[M], M]:
    """Decorator of a metric class or function: it writes ``columns``; reports and summaries read them from here."""

    def register(metric: M) -> M:
        for column in columns:
            COLUMNS.add(column.name, column)
        return declared(metric)

    return register


def declared_columns() -> Registry[Column]:
    """:data:`COLUMNS`, with the project's metrics' declarations (importing their modules registers them)."""
    from benchmarks.metrics import corpus, per_item, pie_bench  # noqa: F401

    return COLUMNS


def column_notes(columns: Collection[str]) -> list[str]:
    """``column: definition`` for each of ``columns`` that has a note, in the order of ``columns``."""
    registry = declared_columns()
    notes = {column.name: column.note for column in registry.values() if column.note}
    return [f"{column}: {notes[column]}" for column in columns if column in notes]
