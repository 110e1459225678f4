"""Hydra callbacks of the harness."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from benchmarks.harness import COLUMN_NOTES


class SweepSummary(Callback):
    """After a ``--multirun`` sweep, print one table of every job's summary.

    Jobs return their summary frame (see :func:`benchmarks.harness.run_from_config`); jobs
    run by launchers in other processes return nothing here and are listed as such.
    """

    def __init__(self) -> None:
        self.summaries: list[pd.DataFrame] = []
        self.unreported: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        value = job_return.return_value if job_return.status == JobStatus.COMPLETED else None
        if isinstance(value, pd.DataFrame) and not value.empty:
            self.summaries.append(value)
        else:
            self.unreported.append(" ".join(job_return.overrides or []))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.summaries:
            table = pd.concat(self.summaries)
            print("\nSweep summary (mask_iou in %, n/a: the method has no mask; seconds and unet_evals per item)\n")
            print(table.to_string(na_rep="n/a", float_format=lambda v: f"{v:.3f}"))
            for column, definition in COLUMN_NOTES.items():
                if column in table:
                    print(f"{column}: {definition}")
        for overrides in self.unreported:
            print(f"No summary from the job with overrides: {overrides} (it failed, or ran in another process).")
