"""One configuration's items as a table: per item its edit, outcome, saved images and metrics.

The same view is what a run logs to W&B (:meth:`benchmarks.run.loggers.WandbLogger.log_items`)
and what the report's results browser shows per configuration (:mod:`benchmarks.report.site`):
image cells hold the paths of the files the run saved (:meth:`benchmarks.run.folder.ItemImages.save`),
opened as bounded thumbnails by :func:`view_image`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image

from benchmarks.run.folder import EDIT, GROUND_TRUTH, INPUT, MASK, STEPS, find_image
from benchmarks.run.grid import edit_text
from benchmarks.run.results import metric_columns

IMAGE_COLUMNS: dict[str, str] = {"input": INPUT, "ground_truth": GROUND_TRUTH, "mask": MASK, "output": EDIT, "mask_steps": STEPS}
"""The view's image columns in display order, and the file of the run folder each one shows."""
TEXT_COLUMNS = ("item_id", "edit", "edit_type", "status", "flags", "error")
THUMBNAIL_SIDE = 160
"""Longest side, in pixels, of every image a view hands out (the browser's thumbnails, W&B's cells)."""
STRIP_STEPS = 8
"""Denoising steps shown in a per-step mask strip (first and last included)."""
_GAP = 2  # grey pixels between the steps of a strip


def spread_steps(total: int, steps: int) -> list[int]:
    """Up to ``steps`` indices of ``range(total)`` spread evenly, the first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, min(steps, total))})


def _edit_type(row: pd.Series) -> str:
    type_id, name = row.get("meta.edit_type"), row.get("meta.edit_type_name")
    parts = [str(v) for v in (type_id, name) if isinstance(v, (str, int)) and str(v)]
    return " ".join(parts)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def item_view(rows: pd.DataFrame, run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per row of ``rows`` (one configuration's results), in their order: the text columns
    of :data:`TEXT_COLUMNS` (empty strings where a row has none), the image columns of
    :data:`IMAGE_COLUMNS` (the saved file's path in the first of ``run_dirs`` holding it, or None),
    then every metric of ``rows`` (NaN where an item has none)."""
    metrics = metric_columns(rows) if not rows.empty else []
    records = []
    for _, row in rows.iterrows():
        item_id = str(row["item_id"])
        record = {
            "item_id": item_id,
            "edit": edit_text(row.get("source"), row["target"]) if isinstance(row.get("target"), str) else "",
            "edit_type": _edit_type(row),
            "status": _text(row.get("status")),
            "flags": _text(row.get("flags")),
            "error": _text(row.get("error")),
        }
        record.update({column: find_image(run_dirs, item_id, kind) for column, kind in IMAGE_COLUMNS.items()})
        record.update({metric: float(row[metric]) if pd.notna(row[metric]) else np.nan for metric in metrics})
        records.append(record)
    return pd.DataFrame.from_records(records, columns=[*TEXT_COLUMNS, *IMAGE_COLUMNS, *metrics])


def steps_strip(masks: np.ndarray, steps: int = STRIP_STEPS) -> PIL.Image.Image:
    """InstDiffEdit's per-step masks (T x h x w, the run's ``<id>.steps.npz``) at ``steps`` steps
    spread over the loop, side by side on a grey background, as one greyscale image."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"Need per-step masks as T x h x w with T >= 1, got shape {masks.shape}.")
    chosen = spread_steps(masks.shape[0], steps)
    _, height, width = masks.shape
    strip = np.full((height, len(chosen) * (width + _GAP) - _GAP), 128, dtype=np.uint8)
    for slot, step in enumerate(chosen):
        left = slot * (width + _GAP)
        strip[:, left : left + width] = (masks[step].astype(float) * 255).round().astype(np.uint8)
    return PIL.Image.fromarray(strip)


def view_image(path: str | os.PathLike, side: int = THUMBNAIL_SIDE) -> PIL.Image.Image:
    """The picture an image cell of the view stands for, at most ``side`` pixels high and wide
    (a strip of per-step masks: half of it high, as wide as its steps need): the saved image, or
    the strip of the per-step masks.
    Masks keep hard edges (nearest neighbour); images are resampled smoothly."""
    path = Path(path)
    if path.name.endswith(STEPS):
        with np.load(path) as saved:
            strip = steps_strip(saved["masks"])
        height = min(strip.height, side // 2)
        return strip.resize((max(1, round(strip.width * height / strip.height)), height), PIL.Image.NEAREST)
    with PIL.Image.open(path) as image:
        image.load()
        picture = image.copy()
    picture.thumbnail((side, side), PIL.Image.NEAREST if picture.mode in ("1", "L") else PIL.Image.LANCZOS)
    return picture
