"""run.py as a user runs it: offline, on the tiny model and the synthetic split."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import benchmarks.methods

ROOT = Path(__file__).resolve().parents[1]


def _run(*overrides: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_the_tiny_run_prints_a_summary_writes_results_and_resumes(tmp_path: Path) -> None:
    args = ("model=tiny", "dataset=synthetic", "dataset.n=2", f"paths.output_root={tmp_path}")
    first = _run(*args, "logger=wandb")
    assert first.returncode == 0, first.stderr[-3000:]
    for column in ("mask_iou", "seconds", "denoiser_evals"):
        assert column in first.stdout

    run_dir = tmp_path / "tiny" / "synthetic" / "instdiffedit" / "dataset.n=2"
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["synthetic-00000", "synthetic-00001"]
    assert all(r["status"] == "ok" and 0 <= r["mask_iou"] <= 100 and r["denoiser_evals"] > 150 for r in rows)
    assert all(r["param.dataset.n"] == 2 and r["target"] and r["source"] for r in rows), "rows say what differs and the edit"
    assert (run_dir / "images" / "synthetic-00000" / "edit.png").exists()
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B should have logged offline"

    second = _run(*args, "logger=none")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 items to do, 2 already done" in second.stdout + second.stderr
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_the_default_run_edits_the_toy_split_with_the_toy_model_and_shows_reference_rows(tmp_path: Path) -> None:
    result = _run("dataset.n=4", "logger=none", f"paths.output_root={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    for column in ("mask_iou", "changing_rate", "edit_success", "bg_psnr", "seconds", "denoiser_evals"):
        assert column in result.stdout
    assert "reference: disc" in result.stdout and "reference: full" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "toy" / "toy_shapes" / "instdiffedit" / "dataset.n=4" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" and r["edit_success"] in (0.0, 1.0) for r in rows)


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _start_then_signal(tmp_path: Path, *signals: signal.Signals) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """run.py on 9 items in batches of 3; once the first batch is written and the second is in flight, ``signals``
    (0.2 s apart). Returns the finished process and its rows."""
    # At the paper's step counts a batch of 3 takes seconds on a CPU: far longer than the 0.2 s to the signals.
    args = ["model=tiny", "dataset=synthetic", "dataset.n=9", "dataset.size=64", "batch_size=3", "logger=none", f"paths.output_root={tmp_path}"]
    run_dir = tmp_path / "tiny" / "synthetic" / "instdiffedit" / "dataset.n=9,dataset.size=64"
    job = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(_rows(run_dir)) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for number in signals:
        time.sleep(0.2)  # the second batch is being edited (it takes seconds)
        job.send_signal(number)
    stdout, stderr = job.communicate(timeout=240)
    return subprocess.CompletedProcess(job.args, job.returncode, stdout, stderr), _rows(run_dir)


@pytest.mark.slow
def test_sigterm_finishes_and_writes_the_batch_in_flight_then_exits_with_a_message(tmp_path: Path) -> None:
    result, rows = _start_then_signal(tmp_path, signal.SIGTERM)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), "the second batch is finished, the third never starts"
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Stopped by SIGTERM after the batch in flight: 6 item(s) written by this run, 3 left")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_keeps_the_rows_written_before(tmp_path: Path) -> None:
    result, rows = _start_then_signal(tmp_path, signal.SIGINT, signal.SIGINT)
    assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
    assert [r["item_id"] for r in rows] == [f"synthetic-{i:05d}" for i in range(3)]
    assert "Stopped at once by a second signal (SIGINT)" in result.stderr and "Traceback" not in result.stderr


def test_a_model_that_cannot_be_downloaded_stops_the_run_with_one_sentence(tmp_path: Path) -> None:
    result = _run("model=sd14", "logger=none", f"paths.output_root={tmp_path}", env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    base, inpaint = result.stderr.strip().splitlines()[-2:]
    assert base.startswith("error: Could not load 'CompVis/stable-diffusion-v1-4'") and "model.base=" in base
    assert "stable-diffusion-v1-5/stable-diffusion-inpainting" in inpaint and "model.inpaint=" in inpaint


def test_bad_values_stop_the_run_before_any_model_loads_one_error_line_each_and_no_folder(tmp_path: Path) -> None:
    result = _run(
        "model=tiny",
        "dataset=synthetic",
        "method.threshold=1.5",
        "method.num_noises=0",
        "batch_size=0",
        "logger=none",
        f"paths.output_root={tmp_path / 'out'}",
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert sorted(line.split(":")[1].strip() for line in result.stderr.strip().splitlines()) == ["batch_size=0", "method.num_noises=0", "method.threshold=1.5"]
    assert all(line.startswith("error: ") for line in result.stderr.strip().splitlines())
    assert not (tmp_path / "out").exists(), "a run that never started leaves no folder"


def test_a_run_stopped_by_missing_weights_before_any_edit_leaves_no_folder(tmp_path: Path) -> None:
    result = _run(
        "model=tiny",
        "dataset=synthetic",
        "metrics=paper",
        f"metrics.background.weights={tmp_path / 'alexnet.pth'}",
        "logger=none",
        f"paths.output_root={tmp_path / 'out'}",
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: LPIPS needs torchvision's ImageNet AlexNet weights")
    assert list((tmp_path / "out").rglob("*")) == [], "the run's folder and the folders above it, up to the output root, are gone"


@pytest.mark.parametrize("model", ["toy", "toy_dit"])
def test_a_toy_model_on_a_real_split_prints_one_warning_line(tmp_path: Path, model: str) -> None:
    result = _run(
        f"model={model}", "dataset=editing_mask", f"dataset.root={tmp_path / 'missing'}", "logger=none", f"paths.output_root={tmp_path / 'out'}", timeout=120
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and [line.split(":")[0] for line in lines] == ["warning", "error"]
    assert f"model={model} is the toy world's model" in lines[0] and "editing_mask" in lines[0]


def test_a_sweep_job_with_a_bad_value_removes_the_folder_hydra_made_for_it(tmp_path: Path) -> None:
    result = _run("-m", "model=tiny", "dataset=synthetic", "method.threshold=1.5,1.6", "logger=none", f"paths.output_root={tmp_path / 'out'}", timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: method.threshold=1.5:")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["multirun.yaml"]  # the sweep's own record


def test_importing_the_library_imports_neither_hydra_nor_wandb() -> None:
    code = "import sys, instdiffedit, baselines; print(sorted(m for m in ('hydra', 'wandb') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


SD_METHODS = tuple(m.name for m in benchmarks.methods.all_methods() if "sd" in benchmarks.methods.editor_class(m.name).capabilities.families)
"""Every method that runs on SD 1.x/2.x, the tiny model's family (all but FlowEdit)."""


@pytest.mark.slow
def test_a_multirun_over_every_sd_method_summarises_each_with_its_mask_iou(tmp_path: Path) -> None:
    result = _run(
        "-m",
        "model=tiny",
        "dataset=synthetic",
        "dataset.n=1",
        "logger=none",
        f"paths.output_root={tmp_path}",
        f"method={','.join(SD_METHODS)}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("Sweep summary", 1)[1].splitlines()
    header = next(line.split() for line in lines if "mask_iou" in line.split())
    rows = {line.split()[0]: dict(zip(["method", "config_id", *header], line.split())) for line in lines if line.split() and line.split()[0] in SD_METHODS}
    assert set(rows) == set(SD_METHODS)
    assert rows["sdedit"]["mask_iou"] == "n/a" and rows["oracle_inpaint"]["mask_iou"] == "100.000"
    assert all(r["failed"] == "0" for r in rows.values()), lines
    assert float(rows["diffedit"]["denoiser_evals"]) == 10 * 2 * 25 * 2 + 2 * 51  # mask runs + SD-inpainting (PNDM: 51 steps)
    assert float(rows["instdiffedit"]["denoiser_evals"]) == 25 * 6 + 2 * 51


FAMILY_METHODS = ("instdiffedit", "diffedit", "sdedit", "oracle_inpaint", "no_mask")
# UNet/transformer evaluations per item: InstDiffEdit's 25 steps x 3 noises and DiffEdit's 25 x 10 noises x 2
# texts, x 2 rows with classifier-free guidance (not FLUX.1 [dev]), then 50 inpainting steps (SDXL's twin and
# SD 3.x's latent blending with CFG, FLUX.1 Fill without).
FAMILY_EVALS = {
    "tiny_sdxl": {"instdiffedit": 150 + 100, "diffedit": 1000 + 100, "sdedit": 50, "oracle_inpaint": 100, "no_mask": 150},
    "tiny_sd3": {"instdiffedit": 150 + 100, "diffedit": 1000 + 100, "sdedit": 50, "oracle_inpaint": 100, "no_mask": 150},
    "tiny_flux": {"instdiffedit": 75 + 50, "diffedit": 500 + 50, "sdedit": 25, "oracle_inpaint": 50, "no_mask": 75},
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(FAMILY_EVALS))
def test_every_method_that_applies_runs_on_each_tiny_family(tmp_path: Path, model: str) -> None:
    result = _run(
        "-m",
        f"model={model}",
        "dataset=synthetic",
        "dataset.n=1",
        "logger=none",
        f"paths.output_root={tmp_path}",
        f"method={','.join(FAMILY_METHODS)}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("Sweep summary", 1)[1].splitlines()
    header = next(line.split() for line in lines if "mask_iou" in line.split())
    rows = {line.split()[0]: dict(zip(["method", "config_id", *header], line.split())) for line in lines if line.split() and line.split()[0] in FAMILY_METHODS}
    assert set(rows) == set(FAMILY_METHODS)
    assert all(r["failed"] == "0" for r in rows.values()), lines
    assert rows["sdedit"]["mask_iou"] == "n/a" and rows["oracle_inpaint"]["mask_iou"] == "100.000"
    assert {method: float(r["denoiser_evals"]) for method, r in rows.items()} == FAMILY_EVALS[model]


# FlowEdit's published settings: SD 3 runs n_max 33 steps x source and target x CFG, FLUX.1 [dev] 24 x 2 (embedded guidance).
FLOWEDIT_EVALS = {"tiny_sd3": 33 * 2 * 2, "tiny_flux": 24 * 2}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(FLOWEDIT_EVALS))
def test_flowedit_runs_on_each_flow_matching_tiny_family_and_reports_no_mask(tmp_path: Path, model: str) -> None:
    result = _run(f"model={model}", "dataset=synthetic", "method=flowedit", "dataset.n=1", "logger=none", f"paths.output_root={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in next(tmp_path.glob(f"{model}/synthetic/flowedit/*/results.jsonl")).read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok"]
    assert rows[0]["denoiser_evals"] == FLOWEDIT_EVALS[model]
    assert math.isnan(rows[0]["mask_iou"]) and not math.isnan(rows[0]["changing_rate"]), "no mask to score; the image is scored"


@pytest.mark.parametrize(
    ("model", "method", "families"),
    [
        ("tiny_sdxl", "ledits_pp", "SD 1.x/2.x"),
        ("tiny_flux", "diffedit_ddim", "SD 1.x/2.x"),
        ("tiny", "flowedit", "SD 3.x and FLUX.1"),
        ("tiny", "kontext", "FLUX.1 Kontext"),
        ("tiny_kontext", "instdiffedit", "SD 1.x/2.x and SDXL and SD 3.x and FLUX.1"),
    ],
)
def test_a_method_on_a_family_it_does_not_run_on_is_refused_before_any_model_loads(tmp_path: Path, model: str, method: str, families: str) -> None:
    cache = tmp_path / "cache"
    result = _run(f"model={model}", f"method={method}", "logger=none", f"paths.output_root={tmp_path}", env={"INSTDIFFEDIT_CACHE": str(cache)}, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: method={method} with model={model}: ") and f"runs on {families} models only" in message
    assert not cache.exists(), "the tiny model was built: the refusal came after loading"


@pytest.mark.slow
def test_the_mask_x_editor_grid_runs_on_pie_bench_format_data_and_the_report_tabulates_every_pair(tmp_path: Path) -> None:
    from pie_layout import write_pie_bench

    from benchmarks.report.__main__ import main as report

    masks, editors = ("instdiffedit", "diffedit", "oracle", "whole"), ("twin", "blend", "instruction")  # PIE-Bench has no centred disc
    result = _run(
        "-m",
        "experiment=mask_x_editor",
        "model=tiny",
        "dataset=pie_bench",
        f"dataset.root={write_pie_bench(tmp_path / 'pie')}",
        "dataset.edit_types=[1]",  # one item
        f"mask={','.join(masks)}",
        "logger=none",
        f"paths.output_root={tmp_path / 'out'}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert report([str(tmp_path / "out" / "tiny"), "--out", str(tmp_path / "report"), "--only", "tables"]) == 0
    table = (tmp_path / "report" / "tables" / "mask_x_editor_tiny_pie_bench.md").read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in table.splitlines() if line.startswith("| ") and "Mask" not in line}
    assert rows == {(mask, editor) for mask in masks for editor in editors}
