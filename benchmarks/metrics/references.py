"""Reference rows: how trivial masks score on a split, so a method's mask IoU has a floor to beat."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from benchmarks.data.items import EditDataset
from benchmarks.metrics.functional import mask_iou


def reference_rows(dataset: EditDataset, item_ids: Sequence[str]) -> pd.DataFrame:
    """Mean mask IoU (%) of each of the split's reference masks against the items' ground truth.

    Indexed like a run summary (method, config_id), with method ``reference: <name>``; only
    ``items`` and ``mask_iou`` are filled: a reference mask is not an edit.
    """
    masks = dataset.reference_masks()
    scores: dict[str, list[float]] = {name: [] for name in masks}
    for item_id in item_ids:
        truth = dataset.load(item_id).gt_mask
        if truth is None or not truth.any():
            continue
        for name, mask in masks.items():
            scores[name].append(100.0 * mask_iou(mask, truth))
    index = pd.MultiIndex.from_tuples([(f"reference: {name}", "-") for name in masks], names=["method", "config_id"])
    return pd.DataFrame(
        {"items": [len(s) for s in scores.values()], "mask_iou": [sum(s) / len(s) if s else float("nan") for s in scores.values()]},
        index=index,
    )
