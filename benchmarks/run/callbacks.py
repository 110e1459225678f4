"""Hydra callbacks of the harness."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from benchmarks.metrics.columns import column_notes
from benchmarks.run.folder import RunFolder, discard_unstarted_job, find_run_dirs
from benchmarks.run.merge import format_report, merge_run
from benchmarks.run.writes import unwritable


class SweepSummary(Callback):
    """After a ``--multirun`` sweep, print one table of every job's summary.

    Jobs return their summary frame (see :func:`benchmarks.run.harness.run_from_config`). Jobs run
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
            print("\nSweep summary (mask_iou in %, n/a: the method has no mask; seconds and denoiser_evals per item)\n")
            print(table.to_string(na_rep="n/a", float_format=lambda v: f"{v:.3f}"))
            for note in column_notes(table.columns):
                print(note)
        for overrides in self.unreported:
            print(f"No summary from the job with overrides: {overrides} (it failed, or ran in another process).")
        if not self.summaries and not self.unreported:
            self._report_launched_runs(Path(str(config.hydra.sweep.dir)))
        if self.summaries:
            table = pd.concat(self.summaries)
            failed = table[(table["items"] > 0) & (table["failed"] == table["items"])]
            if not failed.empty:
                configs = ", ".join(f"{method} {config_id}" for method, config_id in failed.index)
                print(
                    f"error: every item failed in {len(failed)} of the sweep's {len(table)} configuration(s) "
                    f"({configs}); each job's error line and its rows' error column say why.",
                    file=sys.stderr,
                )
                raise SystemExit(1)

    def _report_launched_runs(self, sweep_dir: Path) -> None:
        """Merge and report the run folders below ``sweep_dir`` that got results during this sweep."""
        written = [
            run_dir
            for run_dir in (find_run_dirs([sweep_dir]) if sweep_dir.is_dir() else [])
            if any(path.stat().st_mtime >= self.started - 1 for _, _, path in RunFolder(run_dir).results_files())
        ]
        if written:
            print("\nThe sweep's jobs ran in other processes; their results, merged per run folder:\n")
        for run_dir in written:
            print(format_report(merge_run(run_dir)))


class ValidateConfig(Callback):
    """Checks the composed config before a run starts (:mod:`benchmarks.run.config_check`).

    Every problem is one ``error:`` line on stderr and the run exits with 2, before any model
    loads; warnings are printed and the run goes on. A single run is checked in
    ``on_run_start``, before Hydra creates its folder, so a run that never started leaves no
    folder; so is whether its folder can be created and written. A sweep's job is checked as it
    starts (Hydra has just made its folder): a job that fails removes what Hydra wrote for it
    (:func:`benchmarks.run.folder.discard_unstarted_job`); the sweep's folder is checked first.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)
        HydraConfig.instance().set_config(config)  # what Hydra does next, to resolve the folder's ${hydra:...} parts
        _check_writable(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before Hydra builds the sweep's sweeper and launcher: their targets, and every other, must be
        the project's; then the sweep's folder must be writable."""
        from benchmarks.run.targets import target_errors

        if errors := target_errors(config):
            print("\n".join(f"error: {error}" for error in errors), file=sys.stderr)
            raise SystemExit(2)
        _check_writable(Path(str(config.hydra.sweep.dir)))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._check(config, job_started=True)

    @staticmethod
    def _check(config: DictConfig, job_started: bool = False) -> None:
        try:
            from benchmarks.run.config_check import check_run_config

            check = check_run_config(config)
        except Exception as error:  # Hydra would turn it into a warning and run unchecked
            print(f"error: the config check itself failed ({type(error).__name__}: {error}); fix that and run again.", file=sys.stderr)
            raise SystemExit(2) from error
        for warning in check.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if check.errors:
            for error in check.errors:
                print(f"error: {error}", file=sys.stderr)
            if job_started:
                discard_unstarted_job(config.hydra, stop=Path(str(config.paths.output_root)))
            raise SystemExit(2)


def _check_writable(folder: Path) -> None:
    """Exit with one ``error:`` line (and 2) when the run's folder cannot be created or written."""
    if (problem := unwritable(folder)) is not None:
        print(f"error: the run folder {folder} cannot be written: {problem}; set paths.output_root to a folder you can write.", file=sys.stderr)
        raise SystemExit(2)
