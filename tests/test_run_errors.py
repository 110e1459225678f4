"""How a run ends when the world fails it: one ``error:`` line and a non-zero exit, never a traceback.

Faults that cannot be made for real in a test (a full disk, a read-only mount seen by root, a W&B
server out of reach, a model that loads for minutes) are simulated: in this process, or in a
``run.py`` started by ``tests/patched_run.py``, whose stand-ins make runs take seconds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from benchmarks.data.files import MissingFilesError
from benchmarks.data.folder_split import FolderSplit
from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.run.callbacks import SweepSummary
from benchmarks.run.loggers import WandbLogger
from benchmarks.run.merge import main as merge_main
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, failures, run
from benchmarks.run.writes import RunFolderError, unwritable
from instdiffedit.types import Capabilities, EditResult

ROOT = Path(__file__).resolve().parents[1]
TINY = ("model=tiny", "dataset=synthetic", "dataset.n=2", "logger=none")


def patched_run(fault: str, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """run.py under ``fault`` (see tests/patched_run.py), to the end."""
    return subprocess.run(
        [sys.executable, "tests/patched_run.py", fault, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The run's last stderr line, after checking that stderr holds no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


class InputEditor:
    """Returns each input as its edit, at once."""

    capabilities = Capabilities(families=frozenset({"sd"}))

    def edit(self, image, *, target, source=None, prompt=None, mask=None, generator=None) -> EditResult:
        return EditResult(image=image, mask=mask, timings={"total": 0.0})


# -- the run folder cannot be written ---------------------------------------------------------


def test_an_output_root_that_cannot_be_created_stops_the_run_with_one_line_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "run.py", *TINY, f"paths.output_root={tmp_path / 'a-file' / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert error_line(result) == (
        f"error: the run folder {tmp_path}/a-file/out/tiny/synthetic/instdiffedit/dataset.n=2 cannot be written: "
        f"{tmp_path}/a-file is a file, not a folder; set paths.output_root to a folder you can write."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_read_only_run_folder_is_found_before_the_run_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "out" / "run"
    run_dir.mkdir(parents=True)
    assert unwritable(run_dir) is None and unwritable(run_dir / "images" / "deeper") is None
    real_access = os.access  # a read-only mount, as root sees it too (root ignores permission bits)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != run_dir and real_access(path, mode))
    assert unwritable(run_dir) == f"{run_dir} is read-only"
    assert unwritable(run_dir / "not-yet" / "made") == f"{run_dir} is read-only", "the nearest folder that exists decides"


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_rows_written_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = SyntheticDataset(n=3, size=32)
    table = ResultsTable(tmp_path / "results.jsonl")
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:  # the disk fills up while the second row is written
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RunFolderError) as stopped:
        run(InputEditor(), dataset, table, RunSpec("input", "c", 1))
    assert str(stopped.value) == (
        f"could not write {table.path}: No space left on device (the disk is full: free some space, or set "
        "paths.output_root to a folder on another disk); every row written before is kept, run the same command again to resume."
    )
    assert [row["item_id"] for row in table.rows()][0] == "synthetic-00000", "the first row stays"
    assert len(calls) == 2, "the run stopped at the failed write instead of failing every item after it"


def test_a_full_disk_ends_a_run_with_one_error_line(tmp_path: Path) -> None:
    result = patched_run("disk_full", *TINY, f"paths.output_root={tmp_path}")
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"error: could not write {tmp_path}/tiny/synthetic/instdiffedit/dataset.n=2/images: No space left on device")
    assert "(the disk is full" in line


def test_a_results_file_the_harness_did_not_write_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"item_id": "a", "method": "m", "config_id": "c", "status": "ok"}\n{"a": 1}\n')
    with pytest.raises(ValueError, match=rf"^{path} is not a results file of run.py: line 2 lacks the key column\(s\) item_id, method, config_id\."):
        ResultsTable(path).rows()
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match=rf"^{path} is not a results file of run.py: line 1 is not a line of JSON text"):
        ResultsTable(path).rows()


@pytest.mark.parametrize("text", ['{"a": 1}\n', "[1, 2]\n", "\u00e9t\u00e9\n".encode("latin-1")])
def test_a_merge_of_a_file_the_harness_did_not_write_is_one_error_line(tmp_path: Path, capsys, text) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert merge_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} is not a results file of run.py: line 1 ") and err.count("\n") == 1
    assert not (tmp_path / "results.merged.jsonl").exists()


# -- W&B, Ctrl-C, manifests -------------------------------------------------------------------


def test_wandb_that_cannot_reach_its_server_logs_offline_with_one_warning_line(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    class CommError(Exception):
        pass

    modes: list[str] = []
    run_ = types.SimpleNamespace(log=lambda values: None, summary={}, finish=lambda: None)

    def init(*, mode: str, **settings):
        modes.append(mode)
        if mode == "online":
            raise CommError("Run initialization has timed out after 90.0 sec.\nPlease try again.")
        return run_

    fake = types.SimpleNamespace(init=init, errors=types.SimpleNamespace(Error=CommError))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = WandbLogger("p", mode="online")
    logger.start("name", "group", {})
    logger.log_row({"item_id": "a", "mask_iou": 1.0})
    logger.close()

    assert modes == ["online", "offline"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "W&B could not start online (Run initialization has timed out after 90.0 sec. Please try again.); "
        "logging offline instead: sync later with `wandb sync`."
    ]


def test_wandb_offline_failures_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    class UsageError(Exception):
        pass

    def init(**settings):
        raise UsageError("bad setting")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init, errors=types.SimpleNamespace(Error=UsageError)))
    with pytest.raises(UsageError):
        WandbLogger("p", mode="offline").start("name", "group", {})


def test_ctrl_c_while_the_models_load_is_one_line_exit_130_and_leaves_no_folder(tmp_path: Path) -> None:
    job = subprocess.Popen(
        [sys.executable, "tests/patched_run.py", "slow_model_load", *TINY, f"paths.output_root={tmp_path / 'out'}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    for line in job.stderr:
        if line.strip() == "LOADING":
            break
    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 130
    assert error_line(subprocess.CompletedProcess(job.args, 130, stdout, stderr)) == (
        "error: stopped by Ctrl-C (SIGINT); every row written before is kept: run the same command again to resume."
    )
    assert list((tmp_path / "out").rglob("*")) == [], "nothing was edited: Hydra's files and the lock are removed"


def test_a_directory_given_as_a_manifest_is_reported_as_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "items.csv"
    folder.mkdir()
    with pytest.raises(MissingFilesError, match=r"is a directory: give the \.csv or \.jsonl file in it"):
        FolderSplit(str(folder))


@pytest.mark.parametrize(("suffix", "bom"), [(".csv", b""), (".jsonl", b""), (".csv", b"\xef\xbb\xbf")])
def test_a_manifest_that_is_not_utf8_names_the_file_the_line_and_the_byte(tmp_path: Path, suffix: str, bom: bytes) -> None:
    lines = (
        [b"image,target", b"cat.png,a dog", "caf\u00e9.png,a cat".encode("latin-1")]
        if suffix == ".csv"
        else [b'{"image": "cat.png", "target": "a dog"}', b'{"image": "x.png", "target": "a cat"}', '{"image": "caf\u00e9.png"}'.encode("latin-1")]
    )
    manifest = tmp_path / f"items{suffix}"
    manifest.write_bytes(bom + b"\n".join(lines) + b"\n")
    offset = len(bom) + len(lines[0]) + len(lines[1]) + 2 + lines[2].index(b"\xe9")
    with pytest.raises(MissingFilesError) as refused:
        FolderSplit(str(manifest))
    message = str(refused.value)
    assert f"the manifest {manifest}" in message
    assert f"line 3: not UTF-8 text (byte 0xe9 at byte offset {offset} of the file): save the manifest as UTF-8" in message


# -- exit codes that tell the truth -------------------------------------------------------------


def test_failures_say_every_item_failed_only_when_none_succeeded() -> None:
    rows = pd.DataFrame([{"method": "m", "config_id": "c", "item_id": str(i), "status": "failed", "error": f"E{i}"} for i in range(2)])
    assert failures(rows, "m", "c").every_item
    assert failures(rows, "m", "c").line().startswith("error: every item failed (2 of 2); the first error: E0.")
    rows.loc[1, "status"] = "ok"
    assert not failures(rows, "m", "c").every_item
    assert failures(rows, "m", "c").line().startswith("warning: 1 of 2 items failed (the first error: E0)")
    rows["status"] = "ok"
    assert failures(rows, "m", "c").line() is None and failures(pd.DataFrame(), "m", "c").line() is None


def test_a_run_whose_items_all_fail_exits_1_after_its_summary(tmp_path: Path) -> None:
    result = patched_run("every_edit_fails", *TINY, f"paths.output_root={tmp_path}")
    assert result.returncode == 1
    assert "failed" in result.stdout, "the summary is printed first"
    assert error_line(result).startswith("error: every item failed (2 of 2); the first error: RuntimeError: simulated editing failure.")
    rows = [json.loads(line) for line in next(tmp_path.rglob("results.jsonl")).read_text().splitlines()]
    assert [r["status"] for r in rows] == ["failed", "failed"]


def test_a_sweep_with_a_configuration_whose_items_all_failed_ends_with_1(capsys) -> None:
    index = pd.MultiIndex.from_tuples([("instdiffedit", "c1"), ("instdiffedit", "c2")], names=["method", "config_id"])
    summary = SweepSummary()
    summary.summaries = [pd.DataFrame({"items": [2], "failed": [0]}, index=index[:1]), pd.DataFrame({"items": [2], "failed": [2]}, index=index[1:])]
    with pytest.raises(SystemExit) as ended:
        summary.on_multirun_end(OmegaConf.create({}))
    assert ended.value.code == 1
    assert capsys.readouterr().err.startswith("error: every item failed in 1 of the sweep's 2 configuration(s) (instdiffedit c2)")
