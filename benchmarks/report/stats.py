"""Means with bootstrap confidence intervals over items, per configuration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

CONFIG = ["model", "dataset", "method", "config_id"]
"""A configuration: rows of one (model, split, method, settings) are the items of one sample."""


def mean_ci(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of the defined (non-NaN) values and its percentile-bootstrap confidence interval.

    NaN means "undefined for this item" (an IoU without a mask) and is left out, as in the
    runner's summary. The interval is NaN where resampling says nothing: fewer than two values,
    or non-finite ones (a PSNR of inf for an untouched background). Seeded, so reports are
    reproducible. Percentile rather than BCa: BCa is undefined on the constant samples small
    runs produce.
    """
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    if array.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(array.mean())
    if array.size < 2 or not np.isfinite(array).all():
        return mean, np.nan, np.nan
    if np.ptp(array) == 0:
        return mean, mean, mean
    result = bootstrap(
        (array,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(rows: pd.DataFrame, metrics: Sequence[str], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per configuration: ``items``, ``failed``, ``flagged``, then per metric its mean over
    the successful items and the interval (``<metric>``, ``<metric>_low``, ``<metric>_high``).

    Metrics absent from ``rows`` get NaN columns: a table may ask for a metric a run did not measure.
    """
    records = []
    for key, group in rows.groupby(CONFIG, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        record = dict(zip(CONFIG, key))
        record.update(items=len(group), failed=int((group["status"] != "ok").sum()), flagged=int(group["flags"].astype(bool).sum()))
        for metric in metrics:
            values = pd.to_numeric(ok[metric], errors="coerce") if metric in ok else pd.Series(dtype=float)
            mean, low, high = mean_ci(values.to_numpy(), confidence=confidence, resamples=resamples, seed=seed)
            record.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        records.append(record)
    return pd.DataFrame.from_records(
        records, columns=[*CONFIG, "items", "failed", "flagged"] + [f"{m}{suffix}" for m in metrics for suffix in ("", "_low", "_high")]
    )
