"""A run folder has one reader: the merge, the report and every other reader see the same rows,
and the files a run saves are found by the names they were saved under."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.report import load_results
from benchmarks.report.build import build_report
from benchmarks.run.folder import (
    GROUND_TRUTH,
    INPUT,
    MASK,
    MERGED_NAME,
    STEPS,
    ItemImages,
    RunFolder,
    Shard,
    find_image,
    read_results,
)
from benchmarks.run.merge import main as merge_main
from benchmarks.run.merge import merge_run
from benchmarks.run.results import ResultsTable
from instdiffedit.types import EditResult

ITEMS = ["a", "b", "c", "d"]


def _row(item_id: str, status: str) -> dict:
    row = {"item_id": item_id, "method": "m", "config_id": "c", "dataset": "toy_shapes", "status": status, "seconds": 1.0}
    return row | ({"mask_iou": 50.0, "target": "a blue square"} if status == "ok" else {"error": "RuntimeError: boom"})


def _write(run_dir: Path, shard: Shard, rows: list[dict]) -> None:
    table = ResultsTable(run_dir / shard.results_name)
    for row in rows:
        table.append(row)


@pytest.fixture
def two_shardings(tmp_path: Path) -> Path:
    """Item ``a`` ok in shard 0 of 2 and failed in shard 0 of 4 (a run re-launched with another
    shard count), whose file is read after the other's."""
    run_dir = tmp_path / "toy" / "toy_shapes" / "m" / "default"
    RunFolder(run_dir).write_item_ids(ITEMS)
    _write(run_dir, Shard(0, 2), [_row("a", "ok"), _row("c", "ok")])
    _write(run_dir, Shard(1, 2), [_row("b", "ok"), _row("d", "ok")])
    _write(run_dir, Shard(0, 4), [_row("a", "failed")])
    return run_dir


def test_the_merge_and_the_report_read_an_ok_row_over_a_later_failure_alike(two_shardings: Path) -> None:
    merged = {row["item_id"]: row["status"] for row in merge_run(two_shardings).records}
    reported = load_results([two_shardings]).rows.set_index("item_id")["status"].to_dict()
    assert merged == reported == dict.fromkeys(ITEMS, "ok")
    assert read_results([two_shardings]).set_index("item_id")["status"].to_dict() == merged


def test_a_merged_file_beside_its_shards_is_not_read_again_and_alone_it_stands_for_them(two_shardings: Path, tmp_path: Path) -> None:
    assert merge_main([str(two_shardings)]) == 0
    assert len(read_results([two_shardings])) == len(ITEMS)  # the shards' rows, not theirs and the merge's
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / MERGED_NAME).write_bytes((two_shardings / MERGED_NAME).read_bytes())  # a merge copied without its shards
    rows = read_results([copied])
    assert sorted(rows["item_id"]) == ITEMS and set(rows["run_dir"]) == {str(copied)}


def test_corpus_metrics_only_shards_computed_are_said_not_shown(two_shardings: Path, tmp_path: Path) -> None:
    pd.DataFrame([{"method": "m", "config_id": "c", "fid": 12.0}]).to_csv(two_shardings / Shard(0, 2).summary_name, index=False)
    results = load_results([two_shardings])
    assert results.corpus.empty
    assert any("only its shards computed them" in note for note in results.notes)
    report = build_report([two_shardings], tmp_path / "report", only="tables", resamples=10)
    assert any("only its shards computed them" in reason for reason in report.skipped)


def test_a_run_folder_names_its_files_as_runs_have_always_written_them(tmp_path: Path) -> None:
    folder, shard = RunFolder(tmp_path), Shard(3, 16)
    assert folder.results_file(Shard()) == tmp_path / "results.jsonl"
    assert folder.results_file(shard) == tmp_path / "results.shard-003-of-016.jsonl"
    assert folder.lock_file(shard) == tmp_path / "results.shard-003-of-016.jsonl.lock"
    assert folder.summary_file(Shard()) == tmp_path / "summary.csv"
    assert folder.summary_file(shard) == tmp_path / "summary.shard-003-of-016.csv"
    assert (folder.items_file, folder.merged_file) == (tmp_path / "items.txt", tmp_path / "results.merged.jsonl")
    assert folder.images.file("cat") == tmp_path / "images" / "cat" / "edit.png"


def test_a_folder_not_yet_written_holds_no_results_and_no_item_list(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "not-yet")
    assert folder.results_files() == [] and folder.files_read() == [] and folder.item_ids() is None


def test_what_a_run_saves_per_item_is_found_under_the_same_names(tmp_path: Path) -> None:
    item = SyntheticDataset(n=1, size=16).load("synthetic-00000")
    result = EditResult(image=item.image, mask=item.gt_mask, mask_history=torch.zeros(3, 4, 4, dtype=torch.bool))
    RunFolder(tmp_path).images.save(item, result)
    assert RunFolder(tmp_path).images.saved_items() == [item.id]
    for kind in (INPUT, MASK, GROUND_TRUTH, STEPS):
        assert find_image([tmp_path / "elsewhere", tmp_path], item.id, kind) is not None, kind
    assert np.load(find_image([tmp_path], item.id, STEPS))["masks"].shape == (3, 4, 4)


def test_saved_pairs_reads_back_the_runs_images(tmp_path: Path) -> None:
    dataset = SyntheticDataset(n=3, size=16)
    ids = dataset.item_ids()
    for item_id in ids[:2]:
        dataset.load(item_id).image.save(tmp_path / f"{item_id}.png")
    pairs = list(ItemImages(tmp_path).saved_pairs(dataset))
    assert [item.id for item, _ in pairs] == ids[:2]  # the third has no saved image
    assert all(np.array_equal(np.asarray(image), np.asarray(item.image)) for item, image in pairs)
