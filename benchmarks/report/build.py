"""The whole report from result folders: every table and figure, and an index page linking them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import figures
from benchmarks.report.edit_types import edit_type_tables
from benchmarks.report.load import load_results
from benchmarks.report.site import write_site
from benchmarks.report.tables import Reporter, Table
from benchmarks.run.folder import INPUT, STEPS, find_image
from benchmarks.run.grid import edit_text, open_image, qualitative_grid


@dataclass
class Report:
    """What was written, and what could not be drawn and why (said, never silently skipped).

    ``failed``: one sentence per configuration whose every item failed (the report shows no
    number of theirs; ``python -m benchmarks.report`` exits with 1).
    """

    folder: Path
    tables: list[Table] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _every_item_failed(rows: pd.DataFrame) -> list[str]:
    """A sentence per configuration (run folder, method, config) without an ``ok`` row, with its first error."""
    sentences = []
    for (method, config_id), group in rows.groupby(["method", "config_id"], sort=True):
        if (group["status"] != "ok").all():
            errors = group["error"].dropna() if "error" in group else pd.Series(dtype=str)
            first = errors.iloc[0] if len(errors) else "no error recorded"
            sentences.append(
                f"every item of {method} {config_id} in {group['run_dir'].iloc[0]} failed ({len(group)} of {len(group)}); the first error: {first}"
            )
    return sentences


def _pick_items(candidates: Sequence[str], items: Sequence[str] | None, n_items: int, seed: int) -> list[str]:
    if items:
        return [i for i in items if i in set(candidates)]
    chosen = np.random.default_rng(seed).choice(sorted(candidates), size=min(n_items, len(candidates)), replace=False)
    return sorted(str(i) for i in chosen)


def edit_texts(rows: pd.DataFrame) -> dict[str, str]:
    """Each item's edit text (``source → target``), from the rows that recorded it."""
    if "target" not in rows:
        return {}
    known = rows[rows["target"].notna()].drop_duplicates("item_id")
    sources = known["source"] if "source" in known else [None] * len(known)
    return {item: edit_text(source, target) for item, source, target in zip(known["item_id"], sources, known["target"])}


def _draw_figures(reporter: Reporter, report: Report, *, items: Sequence[str] | None, n_items: int, seed: int, steps: int) -> None:
    out = report.folder / "figures"
    rows, configs = reporter.rows, reporter.configs
    for (model, dataset), group in configs.groupby(["model", "dataset"], sort=True):
        suffix = "_".join(filter(None, (model, dataset)))
        main = group[group["main"]]
        done = rows[(rows["status"] == "ok")].merge(main[["model", "dataset", "method", "config_id"]])
        ok_everywhere = done.groupby("item_id")["config_id"].nunique()
        candidates = [i for i, n in ok_everywhere.items() if n == len(main)]
        chosen = _pick_items(candidates, items, n_items, seed)
        saved = [i for i in chosen if find_image([d for s in main["run_dirs"] for d in s], i, INPUT)]
        if saved:
            columns = [(label, sorted(dirs)) for label, dirs in zip(main["label"], main["run_dirs"])]
            grid = qualitative_grid(saved, columns, edit_texts(rows))
            report.files += figures.save(grid, out, f"qualitative_{suffix}")
        else:
            report.skipped.append(
                f"qualitative grid of {model}/{dataset}: no item done by every method has saved images (runs with save_images=true save images/<id>/{INPUT})."
            )
        if "mask_iou" in rows and "seconds" in rows:
            numbers = reporter.stats(rows[(rows["model"] == model) & (rows["dataset"] == dataset)], ["mask_iou", "seconds"])
            numbers = numbers[numbers["mask_iou"].notna()]
            if not numbers.empty:
                report.files += figures.save(figures.speed_vs_quality(numbers), out, f"speed_vs_iou_{suffix}")
        instdiffedit = main[main["method"] == "instdiffedit"]
        evolution = None
        if not instdiffedit.empty:
            dirs = sorted(instdiffedit["run_dirs"].iloc[0])
            ids = chosen + sorted(set(done[done["method"] == "instdiffedit"]["item_id"]) - set(chosen))
            evolution = next(((i, p) for i in ids if (p := find_image(dirs, i, STEPS))), None)
        if evolution:
            item_id, path = evolution
            image = open_image(find_image(dirs, item_id, INPUT))
            masks = np.load(path)["masks"]
            title = f"InstDiffEdit's instant masks, {item_id} ({model}, {dataset})"
            report.files += figures.save(figures.mask_evolution(masks, image, steps=steps, title=title), out, f"mask_evolution_{suffix}")
        else:
            report.skipped.append(f"mask evolution of {model}/{dataset}: no InstDiffEdit item with saved per-step masks (images/<id>/{STEPS}).")
    for table in report.tables:
        if table.name.startswith("mask_x_editor_") and "changed_iou" in table.numbers and table.numbers["changed_iou"].notna().any():
            report.files += figures.save(figures.grid_heatmap(table.numbers), out, table.name)
        if table.name.startswith("ablation_"):
            param = table.name.removeprefix("ablation_")
            report.files += figures.save(figures.ablation_curves(table.numbers, param), out, table.name)


def _index(report: Report) -> Path:
    lines = ["# Report", "", "Regenerate: `python -m benchmarks.report <result folders>`.", ""]
    lines += [table.markdown() for table in report.tables]
    pngs = [p for p in report.files if p.suffix == ".png"]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(report.folder).as_posix()})" for p in pngs]
    if report.skipped:
        lines += ["", "## Not drawn", ""] + [f"- {s}" for s in report.skipped]
    path = report.folder / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike = "report",
    *,
    only: str | None = None,
    items: Sequence[str] | None = None,
    n_items: int = 4,
    seed: int = 0,
    steps: int = 5,
    confidence: float = 0.95,
    resamples: int = 2000,
    html: str | os.PathLike | None = None,
) -> Report:
    """Read the results under ``paths``; write ``out/tables/*`` (.md, .tex, .csv), ``out/figures/*``
    (.png, .pdf) and ``out/README.md``. ``only`` is "tables" or "figures"; ``items`` (or ``n_items``
    drawn with ``seed``) are the qualitative grid's items; ``html``, a folder: the results browser
    there too (:mod:`benchmarks.report.site`)."""
    if only not in (None, "tables", "figures"):
        raise ValueError(f"only must be 'tables', 'figures' or None, got {only!r}.")
    results = load_results(paths)
    reporter = Reporter(results, confidence=confidence, resamples=resamples, seed=seed)
    report = Report(Path(out), skipped=list(results.notes), failed=_every_item_failed(results.rows))
    report.tables = reporter.all_tables() + edit_type_tables(reporter)
    if only != "figures":
        for table in report.tables:
            report.files += table.write(report.folder / "tables")
    if only != "tables":
        _draw_figures(reporter, report, items=items, n_items=n_items, seed=seed, steps=steps)
    report.files.append(_index(report))
    if html is not None:
        report.files += write_site(report, reporter, html)
    return report
