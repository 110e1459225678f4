"""Scale-out on the CPU: shards through Hydra's submitit_local launcher, merged, equal one run's rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.run.merge import comparable, format_report, merge_run
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[1]
# sdedit is the cheapest method; 64 px keeps an item near a second on one CPU thread.
# One item per batch, so that a killed shard has written some rows and not others.
RUN = ("model=tiny", "dataset=synthetic", "dataset.n=4", "dataset.size=64", "method=sdedit", "logger=none", "batch_size=1")
RUN_DIR = Path("tiny", "synthetic", "sdedit", "dataset.n=4,dataset.size=64")
# One thread per process: the shards run side by side, and results must not depend on thread counts.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _command(*overrides: str, launcher: str | None = None) -> list[str]:
    sweep = ["-m", f"hydra/launcher={launcher}"] if launcher else []
    return [sys.executable, "run.py", *sweep, *RUN, *overrides]


def _run(*overrides: str, launcher: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(_command(*overrides, launcher=launcher), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The reference: the same run in one process, without shards."""
    root = tmp_path_factory.mktemp("unsharded")
    _run(f"paths.output_root={root}")
    return ResultsTable(root / RUN_DIR / "results.jsonl").frame()


@pytest.mark.slow
def test_two_shards_through_submitit_local_merge_to_exactly_the_rows_of_one_run(unsharded, tmp_path: Path) -> None:
    # A timestamp in the output root must be resolved once for the sweep, not once per job.
    result = _run(f"paths.output_root={tmp_path}/sweep-${{now:%H%M%S%f}}", "shard.count=2", "shard.index=range(0,2)", launcher="submitit_local")
    (sweep,) = tmp_path.iterdir()
    run_dir = sweep / RUN_DIR
    merged = merge_run(run_dir)
    assert merged.complete and merged.duplicates == 0, format_report(merged)
    assert len(unsharded) == 4 and (unsharded["status"] == "ok").all()
    pd.testing.assert_frame_equal(comparable(merged.rows), comparable(unsharded))
    # Each job kept its own Hydra files, log and summary, and the sweep printed the merge.
    for tag in ("shard-000-of-002", "shard-001-of-002"):
        assert (run_dir / ".hydra" / tag / "overrides.yaml").exists()
        assert (run_dir / f"run.{tag}.log").read_text().count("items to do") == 1  # its own job's lines only
        assert (run_dir / f"summary.{tag}.csv").exists()
    assert f"{run_dir}: complete: 4 of 4 items ok" in result.stdout


@pytest.mark.slow
def test_a_shard_killed_midway_and_resubmitted_completes_without_duplicates(unsharded, tmp_path: Path) -> None:
    shard1 = ("shard.count=2", f"paths.output_root={tmp_path}")
    results = tmp_path / RUN_DIR / "results.shard-001-of-002.jsonl"
    job = subprocess.Popen(_command(*shard1, "shard.index=1"), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (results.exists() and len(ResultsTable(results).rows()) >= 1):
            assert job.poll() is None, "the shard ended before it could be killed"
            assert time.monotonic() < deadline, "the shard wrote no row in 5 minutes"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGKILL)  # preempted: no chance to clean up
    finally:
        job.wait(timeout=60)
    assert len(ResultsTable(results).rows()) == 1

    # Resubmitted (what submitit does for a preempted task: the same command); shard 0 never ran.
    resumed = _run(*shard1, "shard.index=1")
    assert "1 items to do, 1 already done" in resumed.stdout + resumed.stderr
    merged = merge_run(tmp_path / RUN_DIR)
    rows = ResultsTable(results).rows()
    assert sorted(r["item_id"] for r in rows) == ["synthetic-00001", "synthetic-00003"]
    assert merged.duplicates == 0
    pd.testing.assert_frame_equal(comparable(merged.rows), comparable(unsharded[unsharded["item_id"].isin(merged.rows["item_id"])]))
    # The gap is named: shard 0 of 2 has no file, and its items are missing.
    assert not merged.complete
    assert merged.missing == ["synthetic-00000", "synthetic-00002"]
    assert "results.shard-000-of-002.jsonl does not exist" in format_report(merged)
