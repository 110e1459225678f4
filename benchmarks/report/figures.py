"""The report's figures, drawn with matplotlib's object API (no pyplot state, any backend).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG and PDF.
The qualitative grid, which a run also logs for itself, is :mod:`benchmarks.run.grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
from matplotlib.figure import Figure

from benchmarks.report.tables import metric_display
from benchmarks.run.grid import CELL, overlay, show_panel
from benchmarks.run.item_view import spread_steps


def save(figure: Figure, folder: Path, name: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in formats]
    for path in paths:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return paths


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
        ax.set_ylabel(metric_display(metric)[0])
        ax.grid(alpha=0.3)
    if len(groups) > 1 and metrics:
        axes[0].legend(fontsize=7)
    figure.suptitle(f"Ablation of {param} (mean, 95 % CI over items)", fontsize=9)
    return figure


def grid_heatmap(numbers: pd.DataFrame, metric: str = "changed_iou") -> Figure:
    """``metric`` of every (mask source, editor) as a heatmap, mask sources down, editors across, each cell
    annotated; ``numbers`` is a mask-source x editor table's numbers (:meth:`Reporter.grid_tables`)."""
    grid = numbers.pivot_table(index="mask", columns="editor", values=metric, sort=False)
    figure = Figure(figsize=(1.2 * len(grid.columns) + 1.8, 0.5 * len(grid.index) + 1.2), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    for (row, column), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(value):
            ax.text(column, row, f"{value:{metric_display(metric)[1]}}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(len(grid.columns)), list(grid.columns))
    ax.set_yticks(range(len(grid.index)), list(grid.index))
    ax.set_xlabel("editor")
    ax.set_ylabel("mask source")
    figure.colorbar(image, ax=ax, label=metric_display(metric)[0])
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
    ax.set_xlabel(metric_display("seconds")[0])
    ax.set_ylabel(metric_display(quality)[0])
    ax.grid(alpha=0.3)
    return figure


def mask_evolution(masks: np.ndarray, image: PIL.Image.Image | None = None, *, steps: int = 5, title: str = "") -> Figure:
    """InstDiffEdit's instant mask at ``steps`` denoising steps spread over the loop (first and last
    included): ``masks`` is T x h x w (the run's ``images/<id>/steps.npz``, or ``InstantMasks.history``),
    drawn over ``image`` when given."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"Need per-step masks as T x h x w with T >= 1, got shape {masks.shape}.")
    total = masks.shape[0]
    chosen = spread_steps(total, steps)
    figure = Figure(figsize=(CELL * (len(chosen) + (image is not None)), CELL + 0.5), layout="constrained")
    axes = figure.subplots(1, len(chosen) + (image is not None), squeeze=False)[0]
    if image is not None:
        show_panel(axes[0], image, "input")
    for ax, step in zip(axes[image is not None :], chosen):
        mask = masks[step].astype(float)
        show_panel(ax, overlay(image, mask) if image is not None else mask, f"step {step + 1}/{total}", None if image is not None else "gray")
    if title:
        figure.suptitle(title, fontsize=8)
    return figure
