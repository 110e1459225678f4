"""What the summary's less obvious columns mean: printed under every run's and every sweep's summary."""

from __future__ import annotations

from collections.abc import Collection

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


def column_notes(columns: Collection[str]) -> list[str]:
    """``column: definition`` for each of ``columns`` that has a note, in the notes' order."""
    return [f"{column}: {definition}" for column, definition in COLUMN_NOTES.items() if column in columns]
