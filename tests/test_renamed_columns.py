"""Run folders written before a column was renamed still read, under the column's new name."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import Reporter, load_results
from benchmarks.run.results import RENAMED_COLUMNS, ResultsTable

RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"


def test_the_committed_runs_were_written_with_the_old_column_name() -> None:
    # the premise of the test below: if the committed runs are regenerated, it tests nothing
    first = json.loads((RUNS / "toy" / "toy_shapes" / "instdiffedit" / "default" / "results.jsonl").read_text().splitlines()[0])
    assert "unet_evals" in first and "denoiser_evals" not in first


def test_old_rows_are_read_under_the_new_column_names(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"item_id": "a", "method": "m", "config_id": "c", "unet_evals": 7}) + "\n")
    assert ResultsTable(path).rows() == [{"item_id": "a", "method": "m", "config_id": "c", "denoiser_evals": 7}]
    assert RENAMED_COLUMNS == {"unet_evals": "denoiser_evals"}


def test_the_committed_runs_load_in_the_report_with_their_denoiser_evaluations() -> None:
    results = load_results([RUNS / "toy"])
    assert "unet_evals" not in results.rows and (results.rows["denoiser_evals"] > 0).all()
    table = Reporter(results, resamples=10).speed_table()
    instdiffedit = table.numbers[(table.numbers["method"] == "instdiffedit") & (table.numbers["source"] != "published")]
    assert (instdiffedit["denoiser_evals"] > 0).all() and (instdiffedit["denoiser_evals_vs_instdiffedit"] == 1).all()
