"""Run folders written before a column was renamed still read, under the column's new name."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import Reporter, load_results
from benchmarks.run.results import RENAMED_COLUMNS, ResultsTable

RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"


def _written_before_the_rename(folder: Path) -> Path:
    """A committed run folder's rows as run.py wrote them before ``denoiser_evals`` was ``unet_evals``."""
    source = RUNS / "toy" / "toy_shapes" / "instdiffedit" / "default"
    run = folder / "toy" / "toy_shapes" / "instdiffedit" / "default"
    run.mkdir(parents=True)
    rows = [json.loads(line) for line in (source / "results.jsonl").read_text().splitlines()]
    old = [{("unet_evals" if key == "denoiser_evals" else key): value for key, value in row.items()} for row in rows]
    (run / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in old))
    return folder / "toy"


def test_old_rows_are_read_under_the_new_column_names(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"item_id": "a", "method": "m", "config_id": "c", "unet_evals": 7}) + "\n")
    assert ResultsTable(path).rows() == [{"item_id": "a", "method": "m", "config_id": "c", "denoiser_evals": 7}]
    assert RENAMED_COLUMNS == {"unet_evals": "denoiser_evals"}


def test_run_folders_written_before_the_rename_load_in_the_report_with_their_denoiser_evaluations(tmp_path: Path) -> None:
    old = _written_before_the_rename(tmp_path)
    assert "unet_evals" in (old / "toy_shapes" / "instdiffedit" / "default" / "results.jsonl").read_text()
    results = load_results([old])
    assert "unet_evals" not in results.rows and (results.rows["denoiser_evals"] > 0).all()
    table = Reporter(results, resamples=10).speed_table()
    instdiffedit = table.numbers[(table.numbers["method"] == "instdiffedit") & (table.numbers["source"] != "published")]
    assert (instdiffedit["denoiser_evals"] > 0).all() and (instdiffedit["denoiser_evals_vs_instdiffedit"] == 1).all()
