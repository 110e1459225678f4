"""Merging a run's shard files: one row per (item, method, config), and an honest account of the gaps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.run.folder import (
    MERGED_NAME,
    RunFolder,
    Shard,
    find_run_dirs,
    parse_results_name,
    read_results,
    shard_file_name,
    shard_tag,
)
from benchmarks.run.merge import comparable, format_report, main, merge_run
from benchmarks.run.results import ResultsTable

ITEMS = [f"item-{i:02d}" for i in range(6)]


def _row(item_id: str, status: str = "ok", **values) -> dict:
    row = {"item_id": item_id, "method": "m", "config_id": "c", "seed": 7, "status": status, "seconds": 1.0}
    return row | ({"mask_iou": 50.0, "finished_at": 1e9} if status == "ok" else {"error": "RuntimeError: boom"}) | values


def _write_shard(run_dir: Path, index: int, count: int, rows: list[dict]) -> None:
    table = ResultsTable(run_dir / Shard(index, count).results_name)
    for row in rows:
        table.append(row)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    RunFolder(tmp_path).write_item_ids(ITEMS)
    return tmp_path


def test_shard_file_names_round_trip_and_leave_an_unsharded_run_untagged() -> None:
    assert shard_file_name("results", "jsonl") == "results.jsonl" == Shard().results_name
    assert shard_file_name("results", "jsonl", 3, 16) == "results.shard-003-of-016.jsonl" == Shard(3, 16).results_name
    assert Shard(3, 16).file_name("summary", "csv") == "summary.shard-003-of-016.csv"
    assert parse_results_name("results.shard-003-of-016.jsonl") == (3, 16)
    assert parse_results_name("results.jsonl") == (0, 1)
    assert parse_results_name(MERGED_NAME) is None and parse_results_name("summary.csv") is None
    assert shard_tag(0, 1, "/") == "" and shard_tag(1, 2, "/") == "/shard-001-of-002"


def test_the_item_list_is_written_once_per_content_and_read_back(tmp_path: Path) -> None:
    RunFolder(tmp_path).write_item_ids(ITEMS)
    RunFolder(tmp_path).write_item_ids(ITEMS)
    assert RunFolder(tmp_path).item_ids() == ITEMS
    assert [p.name for p in tmp_path.iterdir()] == ["items.txt"]  # no temporary file left behind
    assert RunFolder(tmp_path / "elsewhere").item_ids() is None


def test_complete_shards_merge_to_one_row_per_item(run_dir: Path) -> None:
    for index in range(2):
        _write_shard(run_dir, index, 2, [_row(i) for i in ITEMS[index::2]])
    result = merge_run(run_dir)
    assert result.complete and result.problems == [] and result.duplicates == 0
    assert sorted(result.rows["item_id"]) == ITEMS
    assert [(s.index, s.count, s.ok) for s in result.shards] == [(0, 2, 3), (1, 2, 3)]
    assert "complete: 6 of 6 items ok" in format_report(result)


def test_a_rerun_shard_keeps_one_row_per_item_and_an_ok_row_beats_a_failure(run_dir: Path) -> None:
    # Shard 1 failed on item-03, was preempted, and its resubmission retried item-03 and did item-05.
    _write_shard(run_dir, 0, 2, [_row(i) for i in ITEMS[0::2]])
    _write_shard(run_dir, 1, 2, [_row("item-01"), _row("item-03", "failed"), _row("item-03", mask_iou=60.0), _row("item-05")])
    # An unsharded run in the same folder redid item-01 and then failed on it: the ok row still wins.
    _write_shard(run_dir, 0, 1, [_row("item-01", "failed")])
    result = merge_run(run_dir)
    assert len(result.rows) == 6 and result.duplicates == 2
    merged = result.rows.set_index("item_id")
    assert merged.loc["item-03", "mask_iou"] == 60.0 and (merged["status"] == "ok").all()
    assert result.complete
    assert any("different shardings (shard.count = 1, 2)" in p for p in result.problems)


def test_missing_and_failed_items_are_named_under_their_shard(run_dir: Path) -> None:
    _write_shard(run_dir, 0, 3, [_row("item-00"), _row("item-03", "failed")])
    _write_shard(run_dir, 1, 3, [_row("item-01")])  # item-04 never done: the shard was killed
    # shard 2 of 3 never ran at all
    result = merge_run(run_dir)
    assert not result.complete
    by_index = {s.index: s for s in result.shards}
    assert by_index[0].failed == ["item-03"] and by_index[0].missing == []
    assert by_index[1].missing == ["item-04"]
    assert by_index[2].file is None and by_index[2].missing == ["item-02", "item-05"]
    assert result.missing == ["item-02", "item-04", "item-05"] and result.failed == ["item-03"]
    report = format_report(result)
    assert "shard 2/3 (no results file): 0 ok; 2 missing: item-02, item-05" in report
    assert "results.shard-002-of-003.jsonl does not exist: shard.index=2 of shard.count=3" in report
    assert "shard 0/3 (results.shard-000-of-003.jsonl): 1 ok; 1 failed: item-03" in report


def test_rows_outside_their_shards_slice_are_reported(run_dir: Path) -> None:
    # Both jobs were launched with shard.index=0 (a typo in the sweep): shard 1's items are missing.
    _write_shard(run_dir, 0, 2, [_row(i) for i in ITEMS[0::2]] + [_row("item-01")])
    result = merge_run(run_dir)
    assert not result.complete
    assert any("results.shard-000-of-002.jsonl holds 1 item(s) outside its slice" in p for p in result.problems)
    assert result.missing == ["item-03", "item-05"]


def test_a_run_without_an_item_list_cannot_be_called_complete(tmp_path: Path) -> None:
    _write_shard(tmp_path, 0, 1, [_row(i) for i in ITEMS])
    result = merge_run(tmp_path)
    assert not result.complete and "items.txt" in result.problems[0]


def test_the_command_merges_every_run_folder_below_a_path_and_fails_on_gaps(tmp_path: Path, capsys) -> None:
    done, gaps = tmp_path / "tiny" / "toy" / "sdedit" / "default", tmp_path / "tiny" / "toy" / "diffedit" / "default"
    for folder, shards in ((done, (0, 1)), (gaps, (0,))):
        RunFolder(folder).write_item_ids(ITEMS)
        for index in shards:
            _write_shard(folder, index, 2, [_row(i, method=folder.parent.name) for i in ITEMS[index::2]])
    assert find_run_dirs([tmp_path]) == [gaps, done]
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{done}: complete" in out and f"{gaps}: INCOMPLETE" in out
    merged = [json.loads(line) for line in (done / MERGED_NAME).read_text().splitlines()]
    assert sorted(r["item_id"] for r in merged) == ITEMS
    assert main([str(done), "--no-write"]) == 0
    assert main([str(tmp_path / "nowhere")]) == 2
    assert len(read_results([tmp_path])) == 9  # what a report reads: merged rows of every run, gaps included


def test_rows_compare_without_their_wall_clock_columns() -> None:
    import pandas as pd

    a = pd.DataFrame([_row("item-01", seconds=1.0, seconds_mask=0.5), _row("item-00")])
    b = pd.DataFrame([_row("item-00", seconds=3.0, finished_at=2e9), _row("item-01", seconds=9.0, seconds_mask=0.1)])
    assert comparable(a).equals(comparable(b))
    assert "seconds" not in comparable(a) and "finished_at" not in comparable(a)
    c = b.assign(mask_iou=[50.0, math.nextafter(50.0, 51.0)])
    assert not comparable(a).equals(comparable(c))


def test_a_rerun_with_another_shard_count_skips_what_any_shard_has_done(run_dir: Path) -> None:
    _write_shard(run_dir, 0, 2, [_row("item-00"), _row("item-02", "failed")])
    _write_shard(run_dir, 1, 2, [_row("item-01"), _row("item-03", config_id="other")])
    assert RunFolder(run_dir).completed_elsewhere("m", "c", run_dir / "results.jsonl") == {"item-00", "item-01"}
    assert RunFolder(run_dir).completed_elsewhere("m", "c", run_dir / "results.shard-001-of-002.jsonl") == {"item-00"}
    assert RunFolder(run_dir / "not-yet").completed_elsewhere("m", "c", "results.jsonl") == set()
