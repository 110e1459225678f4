"""What the result columns mean: their notes (printed under every run's and every sweep's summary)
and, for metrics declared with :func:`register_metric`, their report headers and number formats."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from instdiffedit.registry import Registry, declared

COLUMN_NOTES = {
    "mask_iou": "IoU (%) of the method's binary mask with the ground truth at image resolution; n/a without a mask.",
    "changing_rate": "mean |pixel change| inside the ground-truth mask / mean |pixel change| outside it "
    "(our definition: the paper reports the number without a formula).",
    "changed_iou": "IoU (%) of the changed region (pixels whose max-channel |difference| of the blurred images exceeds "
    "the threshold, docs/metrics-changed-region.md) with the ground truth; changed_precision, changed_recall likewise.",
    "change_outside": "share (%) of the total change (unthresholded) that lies outside the ground-truth mask.",
    "mask_boundary_f": "DAVIS boundary F (%) of the method's mask against the ground truth; n/a without a mask.",
    "edit_success": "toy split: share of edits whose target (colour and shape, or background colour) is recognised in the edited region.",
}


@dataclass(frozen=True)
class Column:
    """One column a metric writes: ``label`` heads it in reports (with its unit), ``fmt`` formats its
    numbers, ``note`` (optional) says what it means under every summary."""

    name: str
    label: str
    fmt: str = ".3g"
    note: str | None = None


COLUMNS: Registry[Column] = Registry("metric column")


def register_metric(*columns: Column) -> Callable[[type], type]:
    """Class decorator: the metric class writes ``columns``; reports and summaries read them from here."""

    def register(metric: type) -> type:
        for column in columns:
            COLUMNS.add(column.name, column)
        return declared(metric)

    return register


def column_notes(columns: Collection[str]) -> list[str]:
    """``column: definition`` for each of ``columns`` that has a note, the project's in their order, then declared ones."""
    notes = COLUMN_NOTES | {column.name: column.note for column in COLUMNS.values() if column.note}
    return [f"{column}: {definition}" for column, definition in notes.items() if column in columns]
