"""Naming the configurations found in results, picking each method's main one, finding sweeps.

A sweep over ``method.threshold`` leaves several configurations of one method side by side;
tables name them by the settings that differ (``instdiffedit (threshold=0.1)``), figures that
show one configuration per method use its main one, and ablation curves follow each swept setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from benchmarks.methods import all_methods
from benchmarks.report.stats import CONFIG

IGNORED_PARAMS = ("param.model",)


DATASET_PARAMS = "param.dataset."
"""Settings of the split (``param.dataset.n``): they tell configurations apart, but are no ablation."""


def _params(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith("param.") and c not in IGNORED_PARAMS]


def _same(a: object, b: object) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b


def _format(value: object) -> str:
    """A setting as its override is typed: a null one (the component's own default) as ``null``, not ``nan``."""
    if pd.isna(value):
        return "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _uses_method_defaults(run_dirs: set[str]) -> bool:
    """A run folder is named by its overrides: one without ``method.*`` ran the method as configured."""
    return any(not any(part.startswith("method.") for part in Path(d).name.split(",")) for d in run_dirs)


def describe_configs(rows: pd.DataFrame, split_items: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per configuration: its key, ``ok`` items, settings (``param.*``), ``run_dirs``,
    ``varying`` (the settings that differ among its method's configurations), ``label``,
    ``main`` (whether it is its method's main configuration), ``order`` (display order),
    ``split_items`` (the items of its split, from its run folders' ``items.txt``; NaN when
    unknown) and ``incomplete`` (fewer ``ok`` items than that).

    A label names the method and every setting that differs among the method's configurations
    on the same model and split, the split's (``dataset.n=4``) included; configurations that no
    setting tells apart (rows of older runs without some setting) get their config id.

    The main configuration of a method is, first, one run without any ``method.*`` override;
    else the one sharing the most settings with the most common value of each; ties go to the
    one with more items, then the first by label.
    """
    params = _params(rows)
    first = rows.groupby(CONFIG, sort=True, dropna=False)
    configs = first[params].first() if params else first.size().to_frame("_")[[]]
    configs["ok"] = first["status"].apply(lambda s: int((s == "ok").sum()))
    configs["run_dirs"] = first["run_dirs"].apply(lambda s: set().union(*s)) if "run_dirs" in rows else [set()] * len(configs)
    configs = configs.reset_index()
    split_items = split_items or {}
    known = [[split_items[d] for d in dirs if d in split_items] for dirs in configs["run_dirs"]]
    configs["split_items"] = [len(set().union(*lists)) if lists else math.nan for lists in known]
    configs["incomplete"] = configs["ok"] < configs["split_items"]  # False where the split is unknown
    configs["varying"] = [[] for _ in range(len(configs))]
    configs["label"] = configs["method"]
    configs["main"] = False
    for _, group in configs.groupby(["model", "dataset", "method"], sort=False):
        varying = [p for p in params if group[p].astype(str).nunique(dropna=False) > 1]  # a null setting is a value too
        labels = {index: [f"{p.removeprefix('param.')}={_format(configs.at[index, p])}" for p in varying] for index in group.index}
        repeated = {tuple(settings) for settings in labels.values() if list(labels.values()).count(settings) > 1}
        for index in group.index:
            configs.at[index, "varying"] = varying
            settings = labels[index] + ([f"config {configs.at[index, 'config_id']}"] if tuple(labels[index]) in repeated else [])
            method = configs.at[index, "method"]
            configs.at[index, "label"] = f"{method} ({', '.join(settings)})" if settings else method
        modes = {p: group[p].mode(dropna=False).iloc[0] for p in varying}
        score = pd.DataFrame(
            {
                "defaults": [_uses_method_defaults(d) for d in group["run_dirs"]],
                "common": [sum(_same(group.at[i, p], modes[p]) for p in varying) for i in group.index],
                "ok": group["ok"],
                "label": group["label"],
            },
            index=group.index,
        )
        best = score.sort_values(["defaults", "common", "ok", "label"], ascending=[False, False, False, True]).index[0]
        configs.at[best, "main"] = True
    rank = {method.name: i for i, method in enumerate(all_methods())}  # by role, then declared rank; unknown: alphabetically
    configs["order"] = [rank.get(m, len(rank)) for m in configs["method"]]
    return configs.sort_values(["model", "dataset", "order", "method", "label"]).reset_index(drop=True)


def swept_params(configs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """For each numeric setting swept within some method, the configurations of its curve.

    A curve against ``p`` holds, per (model, dataset, method), the configurations whose other
    settings equal the most common value of each: with several one-setting sweeps in one
    folder (phi and strength), each curve keeps its own sweep and the shared default point.
    """
    curves: dict[str, list[pd.DataFrame]] = {}
    for _, group in configs.groupby(["model", "dataset", "method"], sort=False):
        varying = group["varying"].iloc[0]
        for p in varying:
            if p.startswith(DATASET_PARAMS) or not pd.api.types.is_numeric_dtype(group[p]) or pd.api.types.is_bool_dtype(group[p]):
                continue
            others = [q for q in varying if q != p]
            keep = pd.Series(True, index=group.index)
            for q in others:
                mode = group[q].mode(dropna=False).iloc[0]
                keep &= group[q].apply(lambda v, m=mode: _same(v, m))
            curve = group[keep]
            if curve[p].nunique() > 1:
                curves.setdefault(p.removeprefix("param."), []).append(curve.sort_values(p))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in curves.items()}
