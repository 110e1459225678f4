"""The paper's tables from result rows: one per split, a speed table, one per ablation.

Each :class:`Table` keeps its numbers (``numbers``: means and interval bounds at full
precision, what tests and other tools read) apart from their display (``display``: the
formatted cells written as Markdown and LaTeX).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.data.items import split_layouts
from benchmarks.metrics.columns import declared_columns
from benchmarks.report.configs import describe_configs, swept_params
from benchmarks.report.load import CORPUS_COLUMNS, Results
from benchmarks.report.published import PUBLISHED, PUBLISHED_SECONDS, SOURCE
from benchmarks.report.stats import CONFIG, summarize
from benchmarks.run import runner  # noqa: F401  (the runner declares the cost columns it writes)
from benchmarks.run.results import COST_COLUMNS
from benchmarks.run.results import metric_columns as result_columns
from benchmarks.toy import split as toy_split  # noqa: F401  (the toy split and its metric declare themselves where they are defined)
from benchmarks.toy import success as toy_success  # noqa: F401


def metric_display(metric: str) -> tuple[str, str]:
    """Header and number format of a metric column: the metric's declaration
    (:func:`benchmarks.metrics.columns.register_metric`), else its name and a general format."""
    column = declared_columns().get(metric)
    return (column.label, column.fmt) if column is not None else (metric, ".3g")


def split_layout(dataset: str) -> tuple[str, tuple[str, ...]]:
    """Title and metric columns of a split's table: the split's declaration
    (:func:`benchmarks.data.items.register_split`), else its name and every metric its rows have."""
    layout = split_layouts().get(dataset)
    return (layout.title, layout.columns) if layout is not None else (dataset, ())


def table_order(dataset: str) -> tuple[bool, int, str]:
    """Sort key of a split's tables: the ranked splits (the paper's) by rank, then the others by name."""
    layout = split_layouts().get(dataset)
    rank = None if layout is None else layout.rank
    return (rank is None, rank or 0, dataset)


GRID_METRICS = ("changed_iou", "changed_precision", "changed_recall", "change_outside", "mask_iou", "mask_boundary_f", "edit_success", "seconds")
"""The mask-source x editor table's columns, where the rows have them."""
GRID_ORDER = ("oracle", "file", "instdiffedit", "diffedit", "disc", "whole", "twin", "blend", "flowedit", "instruction")
"""The grid's order of mask sources (the truth, the methods', the trivial ones) and of editors."""


def _grid_order(name: object) -> int:
    return GRID_ORDER.index(name) if name in GRID_ORDER else len(GRID_ORDER)


NOTES = {
    "changing_rate": "changing rate: mean |pixel change| inside the ground-truth mask / mean |pixel change| outside it "
    "(our definition; the paper gives no formula). Higher = more local.",
    "corpus": "{names}: one value over all edits of a run (no interval).",
    "incomplete": "[incomplete]: the run has fewer successful items than its split lists (its items.txt); items shows "
    "its rows of the split's; run the same command again to finish it.",
}
INCOMPLETE = "[incomplete]"


@dataclass
class Table:
    name: str
    title: str
    numbers: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        notes = "".join(f"- {note}\n" for note in self.notes)
        return f"### {self.title}\n\n{self.display.to_markdown(index=False)}\n\n{notes}"

    def latex(self) -> str:
        caption = f"{self.title}. " + " ".join(self.notes)
        return self.display.to_latex(index=False, escape=True, caption=caption, label=f"tab:{self.name}")

    def write(self, folder: Path) -> list[Path]:
        """``<name>.md``, ``<name>.tex`` and ``<name>.csv`` (the numbers) in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{self.name}.{ext}" for ext in ("md", "tex", "csv")]
        paths[0].write_text(self.markdown(), encoding="utf-8")
        paths[1].write_text(self.latex(), encoding="utf-8")
        self.numbers.to_csv(paths[2], index=False)
        return paths


def cell(mean: float, low: float = math.nan, high: float = math.nan, fmt: str = ".3g") -> str:
    """``mean [low, high]``; ``n/a`` for an undefined mean, the mean alone without an interval."""
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low) or pd.isna(high) or low == high == mean:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """Every per-item metric the rows hold, declared ones in the order declared, then others, then cost."""
    found = [c for c in result_columns(rows) if c not in CORPUS_COLUMNS]
    known = [m for m in declared_columns() if m in found and m not in COST_COLUMNS]
    return known + [c for c in found if c not in known]


class Reporter:
    """Builds every table from one :class:`Results`; bootstrap settings apply to all of them."""

    def __init__(self, results: Results, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> None:
        self.results = results
        self.rows = results.rows
        self.configs = describe_configs(self.rows, results.split_items)
        self.ci = dict(confidence=confidence, resamples=resamples, seed=seed)
        self.several_models = self.rows["model"].nunique() > 1

    # -- numbers -------------------------------------------------------------------------------
    def stats(self, rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
        """Per configuration: items, failed, flagged, metric means and intervals, the corpus
        metrics of its run, and the configuration's label, main flag and display order."""
        per_item = [m for m in metrics if m not in CORPUS_COLUMNS]
        stats = summarize(rows, per_item, **self.ci)
        for metric in (m for m in metrics if m in CORPUS_COLUMNS):
            corpus = self.results.corpus
            values = corpus[metric] if metric in corpus else pd.Series(dtype=float)
            stats[metric] = [values.get((m, c), math.nan) for m, c in zip(stats["method"], stats["config_id"])]
            stats[f"{metric}_low"] = stats[f"{metric}_high"] = math.nan
        info = self.configs[[*CONFIG, "label", "main", "order", "split_items", "incomplete"]]
        stats = stats.merge(info, on=CONFIG, how="left")
        stats.insert(0, "source", "ours")
        return stats.sort_values(["model", "dataset", "order", "label"]).reset_index(drop=True)

    def _published(self, dataset: str, metrics: Sequence[str]) -> pd.DataFrame:
        records = []
        for method, values in PUBLISHED.get(dataset, {}).items():
            shown = {m: v for m, v in values.items() if m in metrics}
            if shown:
                records.append({"source": "published", "dataset": dataset, "method": method, "label": f"{method} (published)", **shown})
        return pd.DataFrame.from_records(records)

    # -- display -------------------------------------------------------------------------------
    def _display(self, numbers: pd.DataFrame, metrics: Sequence[str], leading: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
        table = pd.DataFrame(index=numbers.index)
        if self.several_models:
            table["Model"] = numbers["model"].fillna("")
        for column, header in leading:
            table[header] = numbers[column].map(lambda v: "" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)))
        incomplete = numbers["incomplete"].fillna(False).astype(bool) if "incomplete" in numbers else pd.Series(False, index=numbers.index)
        table["Method"] = [f"{label} {INCOMPLETE}" if mark else label for label, mark in zip(numbers["label"], incomplete)]
        for column in ("items", "failed", "flagged"):
            table[column] = numbers[column].map(lambda v: "" if pd.isna(v) else str(int(v))) if column in numbers else ""
        if incomplete.any():  # rows of the run out of the items its split lists
            table.loc[incomplete, "items"] = [f"{int(n)} of {int(total)}" for n, total in zip(numbers["items"][incomplete], numbers["split_items"][incomplete])]
        for metric in metrics:
            header, fmt = metric_display(metric)
            low, high = numbers.get(f"{metric}_low"), numbers.get(f"{metric}_high")
            table[header] = [
                cell(m, lo, hi, fmt)
                for m, lo, hi in zip(
                    numbers[metric] if metric in numbers else [math.nan] * len(numbers),
                    low if low is not None else [math.nan] * len(numbers),
                    high if high is not None else [math.nan] * len(numbers),
                )
            ]
        return table.reset_index(drop=True)

    def _notes(self, numbers: pd.DataFrame, metrics: Sequence[str], published: bool) -> list[str]:
        ours = numbers[numbers["source"] == "ours"]
        confidence = round(100 * self.ci["confidence"])
        notes = [
            f"Means over items; [low, high]: {confidence} % bootstrap interval over items "
            f"({self.ci['resamples']} resamples, percentile, seed {self.ci['seed']}); n/a: not measured or undefined. "
            "items: rows of the configuration; failed: items whose edit failed; flagged: items with a data flag."
        ]
        if "incomplete" in ours and ours["incomplete"].fillna(False).astype(bool).any():
            notes.append(NOTES["incomplete"])
        none_ok = (ours["items"] > 0) & (ours["failed"] == ours["items"])
        if none_ok.any():
            notes.append(
                f"Every item failed in {', '.join(ours.loc[none_ok, 'label'])}: no metric to show; "
                "the rows' error column says why, and running the same command again retries them."
            )
        measured = ours[~none_ok]
        missing = [m for m in metrics if m not in measured or measured[m].isna().all()]
        if missing and not measured.empty:
            notes.append(f"Not measured in these runs: {', '.join(missing)} (model-backed metrics need metrics=paper, PIE-Bench's metrics=pie_bench).")
        if "changing_rate" in metrics:
            notes.append(NOTES["changing_rate"])
        corpus = [m for m in metrics if m in CORPUS_COLUMNS]
        if corpus:
            notes.append(NOTES["corpus"].format(names=", ".join(corpus)))
        if published:
            notes.append(f"Rows marked (published): the paper's numbers, not ours ({SOURCE}).")
        return notes

    # -- tables --------------------------------------------------------------------------------
    def split_table(self, dataset: str) -> Table:
        """The split's table in its declared layout, our configurations then the paper's rows."""
        rows = self.rows[self.rows["dataset"] == dataset]
        title, metrics = split_layout(dataset)
        metrics = list(metrics) or metric_columns(rows) + [c for c in CORPUS_COLUMNS if c in self.results.corpus]
        numbers = self.stats(rows, metrics)
        published = self._published(dataset, metrics)
        if not published.empty:
            numbers = pd.concat([numbers, published], ignore_index=True)
        return Table(dataset, title, numbers, self._display(numbers, metrics), self._notes(numbers, metrics, not published.empty))

    def speed_table(self) -> Table:
        """Seconds per image and UNet evaluations of every configuration, relative to InstDiffEdit's
        main configuration on the same model and split (and the paper's seconds, on its A30)."""
        metrics = [m for m in ("seconds", "denoiser_evals") if m in self.rows]
        numbers = self.stats(self.rows, metrics)
        for metric in metrics:
            reference = numbers[(numbers["method"] == "instdiffedit") & numbers["main"].astype(bool)].set_index(["model", "dataset"])[metric]
            numbers[f"{metric}_vs_instdiffedit"] = [
                value / reference.get((model, dataset), math.nan) for value, model, dataset in zip(numbers[metric], numbers["model"], numbers["dataset"])
            ]
        published = pd.DataFrame.from_records(
            [
                {
                    "source": "published",
                    "dataset": "all",
                    "method": method,
                    "label": f"{method} (published)",
                    "seconds": s,
                    "seconds_vs_instdiffedit": s / PUBLISHED_SECONDS["instdiffedit"],
                }
                for method, s in PUBLISHED_SECONDS.items()
            ]
        )
        numbers = pd.concat([numbers, published], ignore_index=True)
        display = self._display(numbers, metrics, leading=[("dataset", "Split")])
        for metric in metrics:
            header = f"{metric_display(metric)[0].split(' (')[0]} vs InstDiffEdit"
            display[header] = [cell(v, fmt=".2f") + ("x" if not pd.isna(v) else "") for v in numbers.get(f"{metric}_vs_instdiffedit", [])]
        notes = self._notes(numbers, metrics, True)
        notes.append("vs InstDiffEdit: ratio of means to InstDiffEdit's main configuration on the same model and split.")
        return Table("speed", "Speed", numbers, display, notes)

    def ablation_tables(self) -> list[Table]:
        """One table per swept setting: mask IoU, changing rate and time against its values."""
        tables = []
        for param, curve in swept_params(self.configs).items():
            metrics = [m for m in ("mask_iou", "changing_rate", "seconds") if m in self.rows]
            keys = curve[CONFIG]
            rows = self.rows.merge(keys, on=CONFIG)
            numbers = self.stats(rows, metrics).merge(curve[[*CONFIG, f"param.{param}"]], on=CONFIG)
            numbers = numbers.rename(columns={f"param.{param}": param}).sort_values(["model", "dataset", "order", param])
            numbers = numbers.reset_index(drop=True)
            numbers["label"] = numbers["method"]
            display = self._display(numbers, metrics, leading=[("dataset", "Split"), (param, param)])
            tables.append(Table(f"ablation_{param}", f"Ablation of {param}", numbers, display, self._notes(numbers, metrics, False)))
        return tables

    def grid_tables(self) -> list[Table]:
        """Per model and split with composed runs (``method=compose``): one row per (mask source, editor)
        with where each changed the image, its mask and its time (``experiment=mask_x_editor``)."""
        composed = self.rows[self.rows["method"] == "compose"] if "param.mask" in self.rows else self.rows.iloc[:0]
        tables = []
        for (model, dataset), rows in composed.groupby(["model", "dataset"], sort=True):
            metrics = [m for m in GRID_METRICS if m in rows and rows[m].notna().any()]
            parts = rows.drop_duplicates("config_id")[["config_id", "param.mask", "param.editor"]]
            numbers = self.stats(rows, metrics).merge(parts, on="config_id").rename(columns={"param.mask": "mask", "param.editor": "editor"})
            numbers = numbers.sort_values(["mask", "editor"], key=lambda column: column.map(_grid_order)).reset_index(drop=True)
            numbers["label"] = numbers["mask"] + " x " + numbers["editor"]
            display = self._display(numbers, metrics, leading=[("mask", "Mask"), ("editor", "Editor")]).drop(columns="Method")
            suffix = "_".join(filter(None, (model, dataset)))
            notes = self._notes(numbers, metrics, False)
            notes.append(
                "Changed region: pixels whose max-channel |difference| of the blurred input and edit exceeds the "
                "threshold (docs/metrics-changed-region.md), scored against the ground-truth mask."
            )
            title = f"Mask sources x editors ({split_layout(dataset)[0]}{', ' + model if model else ''})"
            tables.append(Table(f"mask_x_editor_{suffix}", title, numbers, display, notes))
        return tables

    def all_tables(self) -> list[Table]:
        splits = sorted(self.rows["dataset"].unique(), key=table_order)
        return [*map(self.split_table, splits), self.speed_table(), *self.ablation_tables(), *self.grid_tables()]
