"""The qualitative grid: per item its input (with its edit text), its ground-truth mask, then each
configuration's mask over the input and its output, drawn from the images run folders saved.

The report draws it for many runs (:mod:`benchmarks.report.figures`), a run logs its own to W&B
(:func:`run_grid`), the toy card draws the toy split's; matplotlib's object API (no pyplot state,
any backend).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.run.folder import (
    EDIT,
    GROUND_TRUTH,
    INPUT,
    MASK,
    RunFolder,
    find_image,
    read_results,
)

DIM = 0.25  # outside the mask the input is shown at this brightness: any mask colour would clash with some scene
CELL = 1.5  # inches per image panel


def overlay(image: PIL.Image.Image, mask: np.ndarray) -> np.ndarray:
    """The image (H x W x 3 in [0, 1]) dimmed outside ``mask`` (any size, nonzero = edit)."""
    pixels = np.asarray(image.convert("RGB"), dtype=float) / 255
    resized = PIL.Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).resize(image.size, PIL.Image.NEAREST)
    selected = np.asarray(resized)[..., None] > 0
    return np.where(selected, pixels, DIM * pixels)


def show_panel(ax: Axes, picture: np.ndarray | PIL.Image.Image | None, title: str = "", cmap: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if picture is None:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
        for spine in ax.spines.values():
            spine.set_visible(False)
    else:
        ax.imshow(picture, cmap=cmap, vmin=0, vmax=1 if cmap else None, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=7)


def open_image(path: Path | None) -> PIL.Image.Image | None:
    """The image at ``path`` in memory, or None without one."""
    if path is None or not path.is_file():
        return None
    with PIL.Image.open(path) as image:
        return image.copy()


def qualitative_grid(item_ids: Sequence[str], columns: Sequence[tuple[str, Sequence[str | Path]]], texts: Mapping[str, str] | None = None) -> Figure:
    """One row per item: the input (with the item's edit text under it, from ``texts``), the
    ground-truth mask, then per method its mask over the input and its output. ``columns`` are
    (label, run folders) of the configurations to show."""
    texts = texts or {}
    width = 2 + 2 * len(columns)
    figure = Figure(figsize=(CELL * width, CELL * len(item_ids) + 0.4), layout="constrained")
    axes = figure.subplots(len(item_ids), width, squeeze=False)
    for row, item_id in enumerate(item_ids):
        dirs = [d for _, run_dirs in columns for d in run_dirs]
        image = open_image(find_image(dirs, item_id, INPUT))
        gt = open_image(find_image(dirs, item_id, GROUND_TRUTH))
        titles = row == 0
        show_panel(axes[row, 0], image, "input" if titles else "")
        axes[row, 0].set_ylabel(item_id, fontsize=7)
        if item_id in texts:
            axes[row, 0].set_xlabel(textwrap.fill(texts[item_id], 26), fontsize=6)
        show_panel(axes[row, 1], np.asarray(gt) / 255 if gt is not None else None, "ground truth" if titles else "", cmap="gray")
        for index, (label, run_dirs) in enumerate(columns):
            mask = open_image(find_image(run_dirs, item_id, MASK))
            output = open_image(find_image(run_dirs, item_id, EDIT))
            tinted = overlay(image, np.asarray(mask)) if mask is not None and image is not None else None
            show_panel(axes[row, 2 + 2 * index], tinted, f"{label}\nmask" if titles else "")
            show_panel(axes[row, 3 + 2 * index], output, f"{label}\noutput" if titles else "")
    return figure


def edit_text(source: object, target: object) -> str:
    """An item's edit as the grid prints it: ``source → target`` (the target alone without a source)."""
    return f"{source} → {target}" if isinstance(source, str) and source else str(target)


def run_grid(run_dir: str | Path, label: str, n_items: int = 4) -> Figure | None:
    """The qualitative grid of one run folder's first ``n_items`` saved items (for the run's own
    W&B panel), with their edit texts from its results; None when the run saved no images."""
    item_ids = RunFolder(run_dir).images.saved_items()[:n_items]
    rows = read_results([run_dir]).to_dict("records")
    texts = {row["item_id"]: edit_text(row.get("source"), row["target"]) for row in rows if isinstance(row.get("target"), str)}
    return qualitative_grid(item_ids, [(label, [run_dir])], texts) if item_ids else None
