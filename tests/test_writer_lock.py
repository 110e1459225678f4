"""One writer per run folder and shard, and every file of a run folder written with the same permissions."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run.folder import Shard
from benchmarks.run.lock import RunFolderLocked, WriterLock

ROOT = Path(__file__).resolve().parents[1]
TINY = ("model=tiny", "dataset=synthetic", "dataset.n=2", "logger=none")
UMASK = 0o027


def _patched_run(fault: str, output_root: Path) -> subprocess.Popen:
    """run.py under ``fault`` (tests/patched_run.py), with a umask other than the usual 022."""
    return subprocess.Popen(
        [sys.executable, "tests/patched_run.py", fault, *TINY, f"paths.output_root={output_root}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: os.umask(UMASK),
    )


def test_a_second_lock_on_the_same_shard_is_refused_naming_the_holder_and_other_shards_are_free(tmp_path: Path) -> None:
    first = WriterLock(tmp_path / Shard(0, 2).lock_name)
    first.acquire()
    other_shard = WriterLock(tmp_path / Shard(1, 2).lock_name)
    other_shard.acquire()  # shards of one run write side by side
    with pytest.raises(
        RunFolderLocked,
        match=rf"^process {os.getpid()} on {socket.gethostname()} \(since .+\) is writing "
        rf"results\.shard-000-of-002\.jsonl in {tmp_path}: wait for it to end",
    ):
        WriterLock(tmp_path / Shard(0, 2).lock_name).acquire()
    first.release()
    again = WriterLock(tmp_path / Shard(0, 2).lock_name)
    again.acquire()  # released: the next writer takes it
    again.release(remove=True)
    other_shard.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == [Shard(1, 2).lock_name], "a lock's file stays unless its run never started"


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / Shard().lock_name
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from benchmarks.run.lock import WriterLock; WriterLock({str(path)!r}).acquire(); print('held', flush=True); import time; time.sleep(600)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderLocked, match=rf"^process {holder.pid} on "):
        WriterLock(path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    lock = WriterLock(path)
    lock.acquire()  # its file still names the dead process, but the kernel released its lock
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_second_run_on_the_same_folder_and_shard_stops_at_once_naming_the_first(tmp_path: Path) -> None:
    first = _patched_run("slow_model_load", tmp_path)  # holds the run folder while its model "loads"
    try:
        for line in first.stderr:
            if line.strip() == "LOADING":
                break
        second = _patched_run("instant_edits", tmp_path)
        _, stderr = second.communicate(timeout=300)
        assert second.returncode == 1 and "Traceback" not in stderr
        run_dir = tmp_path / "tiny" / "synthetic" / "instdiffedit" / "dataset.n=2"
        assert (
            stderr.strip().splitlines()[-1].startswith(f"error: process {first.pid} on {socket.gethostname()} (since ")
            and f"is writing results.jsonl in {run_dir}" in stderr
        )
        assert not (run_dir / "results.jsonl").exists()
    finally:
        first.send_signal(signal.SIGKILL)  # a holder that dies without a word: its lock goes with it
        first.wait(timeout=60)

    third = _patched_run("instant_edits", tmp_path)
    _, stderr = third.communicate(timeout=300)
    assert third.returncode == 0, stderr[-3000:]
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 2
    modes = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    assert {"items.txt", "results.jsonl", "results.jsonl.lock", "summary.csv", ".hydra/config.yaml", "run.log", "images/synthetic-00000/edit.png"} <= set(modes)
    assert {path for path, mode in modes.items() if mode != 0o666 & ~UMASK} == set(), modes
