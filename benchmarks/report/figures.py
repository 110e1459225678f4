"""The report's figures, drawn with matplotlib's object API (no pyplot state, any backend).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG and PDF.
Images come from a run folder's ``images/`` (see :func:`benchmarks.runner._save_outputs`):
``<id>.input.png``, ``<id>.gt.png``, ``<id>.png`` (the edit), ``<id>.mask.png``, ``<id>.steps.npz``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.report.load import RESULT_FILES
from benchmarks.report.tables import METRICS
from benchmarks.results import ResultsTable

DIM = 0.25  # outside the mask the input is shown at this brightness: any mask colour would clash with some scene
CELL = 1.5  # inches per image panel


def save(figure: Figure, folder: Path, name: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in formats]
    for path in paths:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return paths


def overlay(image: PIL.Image.Image, mask: np.ndarray) -> np.ndarray:
    """The image (H x W x 3 in [0, 1]) dimmed outside ``mask`` (any size, nonzero = edit)."""
    pixels = np.asarray(image.convert("RGB"), dtype=float) / 255
    resized = PIL.Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).resize(image.size, PIL.Image.NEAREST)
    selected = np.asarray(resized)[..., None] > 0
    return np.where(selected, pixels, DIM * pixels)


def _show(ax: Axes, picture: np.ndarray | PIL.Image.Image | None, title: str = "", cmap: str | None = None) -> None:
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


def _open(path: Path) -> PIL.Image.Image | None:
    if not path.is_file():
        return None
    with PIL.Image.open(path) as image:
        return image.copy()


def find_image(run_dirs: Sequence[str | Path], name: str) -> Path | None:
    """``images/<name>`` in the first of ``run_dirs`` that has it (a configuration may span folders)."""
    for run_dir in run_dirs:
        path = Path(run_dir) / "images" / name
        if path.is_file():
            return path
    return None


def qualitative_grid(
    item_ids: Sequence[str], columns: Sequence[tuple[str, Sequence[str | Path]]], texts: Mapping[str, str] | None = None
) -> Figure:
    """One row per item: the input (with the item's edit text under it, from ``texts``), the
    ground-truth mask, then per method its mask over the input and its output. ``columns`` are
    (label, run folders) of the configurations to show."""
    texts = texts or {}
    width = 2 + 2 * len(columns)
    figure = Figure(figsize=(CELL * width, CELL * len(item_ids) + 0.4), layout="constrained")
    axes = figure.subplots(len(item_ids), width, squeeze=False)
    for row, item_id in enumerate(item_ids):
        dirs = [d for _, run_dirs in columns for d in run_dirs]
        image = _open(find_image(dirs, f"{item_id}.input.png") or Path())
        gt = _open(find_image(dirs, f"{item_id}.gt.png") or Path())
        titles = row == 0
        _show(axes[row, 0], image, "input" if titles else "")
        axes[row, 0].set_ylabel(item_id, fontsize=7)
        if item_id in texts:
            axes[row, 0].set_xlabel(textwrap.fill(texts[item_id], 26), fontsize=6)
        _show(axes[row, 1], np.asarray(gt) / 255 if gt is not None else None, "ground truth" if titles else "", cmap="gray")
        for index, (label, run_dirs) in enumerate(columns):
            mask = _open(find_image(run_dirs, f"{item_id}.mask.png") or Path())
            output = _open(find_image(run_dirs, f"{item_id}.png") or Path())
            tinted = overlay(image, np.asarray(mask)) if mask is not None and image is not None else None
            _show(axes[row, 2 + 2 * index], tinted, f"{label}\nmask" if titles else "")
            _show(axes[row, 3 + 2 * index], output, f"{label}\noutput" if titles else "")
    return figure


def ablation_curves(numbers: pd.DataFrame, param: str, metrics: Sequence[str] = ("mask_iou", "changing_rate")) -> Figure:
    """Each metric against the swept setting, with its interval, one line per (model, split, method).
    ``numbers`` is an ablation table's numbers (see :meth:`Reporter.ablation_tables`)."""
    metrics = [m for m in metrics if m in numbers and numbers[m].notna().any()]
    figure = Figure(figsize=(3.2 * max(len(metrics), 1), 2.6), layout="constrained")
    axes = figure.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    groups = list(numbers.groupby(["model", "dataset", "method"], sort=False))
    for ax, metric in zip(axes, metrics):
        for (model, dataset, method), group in groups:
            low = (group[metric] - group[f"{metric}_low"]).clip(lower=0).fillna(0)
            high = (group[f"{metric}_high"] - group[metric]).clip(lower=0).fillna(0)
            label = method if len(groups) == 1 else f"{method}, {model}, {dataset}"
            ax.errorbar(group[param], group[metric], yerr=[low, high], marker="o", capsize=3, label=label)
        ax.set_xlabel(param)
        ax.set_ylabel(METRICS.get(metric, (metric,))[0])
        ax.grid(alpha=0.3)
    if len(groups) > 1 and metrics:
        axes[0].legend(fontsize=7)
    figure.suptitle(f"Ablation of {param} (mean, 95 % CI over items)", fontsize=9)
    return figure


def speed_vs_quality(numbers: pd.DataFrame, quality: str = "mask_iou") -> Figure:
    """Seconds per image against mask IoU, one point (with its intervals) per configuration.
    ``numbers`` holds one model and split's configurations (see :meth:`Reporter.stats`)."""
    figure = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = figure.subplots()
    for _, row in numbers.iterrows():
        x, y = row["seconds"], row[quality]
        xerr = [[max(x - row["seconds_low"], 0)], [max(row["seconds_high"] - x, 0)]] if pd.notna(row["seconds_low"]) else None
        yerr = [[max(y - row[f"{quality}_low"], 0)], [max(row[f"{quality}_high"] - y, 0)]] if pd.notna(row[f"{quality}_low"]) else None
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, marker="o", capsize=3)
        ax.annotate(row["label"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if numbers["seconds"].max() > 10 * numbers["seconds"].min():
        ax.set_xscale("log")
    ax.set_xlabel(METRICS["seconds"][0])
    ax.set_ylabel(METRICS.get(quality, (quality,))[0])
    ax.grid(alpha=0.3)
    return figure


def mask_evolution(masks: np.ndarray, image: PIL.Image.Image | None = None, *, steps: int = 5, title: str = "") -> Figure:
    """InstDiffEdit's instant mask at ``steps`` denoising steps spread over the loop (first and last
    included): ``masks`` is T x h x w (the run's ``<id>.steps.npz``, or ``InstantMasks.history``),
    drawn over ``image`` when given."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"Need per-step masks as T x h x w with T >= 1, got shape {masks.shape}.")
    total = masks.shape[0]
    chosen = sorted({int(round(i)) for i in np.linspace(0, total - 1, min(steps, total))})
    figure = Figure(figsize=(CELL * (len(chosen) + (image is not None)), CELL + 0.5), layout="constrained")
    axes = figure.subplots(1, len(chosen) + (image is not None), squeeze=False)[0]
    if image is not None:
        _show(axes[0], image, "input")
    for ax, step in zip(axes[image is not None :], chosen):
        mask = masks[step].astype(float)
        _show(ax, overlay(image, mask) if image is not None else mask, f"step {step + 1}/{total}", None if image is not None else "gray")
    if title:
        figure.suptitle(title, fontsize=8)
    return figure


def edit_text(source: object, target: object) -> str:
    """An item's edit as the grid prints it: ``source → target`` (the target alone without a source)."""
    return f"{source} → {target}" if isinstance(source, str) and source else str(target)


def run_grid(run_dir: str | Path, label: str, n_items: int = 4) -> Figure | None:
    """The qualitative grid of one run folder's first ``n_items`` saved items (for the run's own
    W&B panel), with their edit texts from its results; None when the run saved no images."""
    images = Path(run_dir) / "images"
    item_ids = sorted(p.name.removesuffix(".input.png") for p in images.glob("*.input.png"))[:n_items]
    rows = [row for path in sorted(Path(run_dir).glob(RESULT_FILES)) for row in ResultsTable(path).rows()]
    texts = {row["item_id"]: edit_text(row.get("source"), row["target"]) for row in rows if row.get("target")}
    return qualitative_grid(item_ids, [(label, [run_dir])], texts) if item_ids else None
