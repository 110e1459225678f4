"""Hydra callbacks of the harness."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from benchmarks.harness import COLUMN_NOTES, discard_unstarted_job
from benchmarks.merge import find_run_dirs, format_report, merge_run
from benchmarks.sharding import parse_results_name


class SweepSummary(Callback):
    """After a ``--multirun`` sweep, print one table of every job's summary.

    Jobs return their summary frame (see :func:`benchmarks.harness.run_from_config`). Jobs run
    by a launcher in other processes (``submitit_local``, ``slurm``, ``local_gpus``) report to
    no callback here, so after such a sweep the run folders it wrote are merged instead, and
    each one's completeness is printed: missing and failed items per shard.
    """

    def __init__(self) -> None:
        self.summaries: list[pd.DataFrame] = []
        self.unreported: list[str] = []
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

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
        if not self.summaries and not self.unreported:
            self._report_launched_runs(Path(str(config.hydra.sweep.dir)))

    def _report_launched_runs(self, sweep_dir: Path) -> None:
        """Merge and report the run folders below ``sweep_dir`` that got results during this sweep."""
        written = [
            run_dir
            for run_dir in (find_run_dirs([sweep_dir]) if sweep_dir.is_dir() else [])
            if any(parse_results_name(p.name) and p.stat().st_mtime >= self.started - 1 for p in run_dir.iterdir())
        ]
        if written:
            print("\nThe sweep's jobs ran in other processes; their results, merged per run folder:\n")
        for run_dir in written:
            print(format_report(merge_run(run_dir)))


class ValidateConfig(Callback):
    """Checks the composed config before a run starts (:mod:`benchmarks.config_check`).

    Every problem is one ``error:`` line on stderr and the run exits with 2, before any model
    loads; warnings are printed and the run goes on. A single run is checked in
    ``on_run_start``, before Hydra creates its folder, so a run that never started leaves no
    folder. A sweep's job is checked as it starts (Hydra has just made its folder): a job that
    fails removes what Hydra wrote for it (:func:`benchmarks.harness.discard_unstarted_job`).
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._check(config, job_started=True)

    @staticmethod
    def _check(config: DictConfig, job_started: bool = False) -> None:
        from benchmarks.config_check import check_run_config

        check = check_run_config(config)
        for warning in check.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if check.errors:
            for error in check.errors:
                print(f"error: {error}", file=sys.stderr)
            if job_started:
                discard_unstarted_job(config.hydra, stop=Path(str(config.paths.output_root)))
            raise SystemExit(2)
