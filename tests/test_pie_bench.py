"""PIE-Bench as its authors distribute it: mask decoding, edit texts, up-front checks, runs and tables."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pie_layout import ITEMS, SIZE, box_mask, encode_runs, item_mask, write_pie_bench

from benchmarks.data import pie_bench
from benchmarks.data.files import MissingFilesError, SplitInputError
from benchmarks.data.pie_bench import (
    EDIT_TYPES,
    PieBenchSplit,
    decode_mask,
    edit_texts,
    edited_phrase,
    run_problem,
)
from benchmarks.metrics.functional import mask_iou
from benchmarks.report import build_report
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------


def test_runs_are_absolute_start_length_pairs_over_row_major_pixels() -> None:
    # 2 rows x 4 columns: pixel (row, col) is row * 4 + col; [3, 2] covers (0, 3) and (1, 0).
    mask = decode_mask([3, 2, 6, 1], height=2, width=4)
    assert mask.tolist() == [[0, 0, 0, 1], [1, 0, 1, 0]]


def test_decoding_inverts_the_encoding_on_a_non_square_mask() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((6, 10)) > 0.6
    decoded = decode_mask(encode_runs(truth), height=6, width=10)
    assert decoded.shape == (6, 10) and torch.equal(decoded.bool(), torch.from_numpy(truth))


def test_a_run_past_the_last_pixel_is_cut_and_overlapping_runs_union() -> None:
    assert decode_mask([2, 100], 2, 2).tolist() == [[0, 0], [1, 1]]
    assert decode_mask([0, 3, 1, 1], 2, 2).tolist() == [[1, 1], [1, 0]]


def test_the_authors_border_frames_the_mask_and_would_bias_iou() -> None:
    truth = box_mask(16, 16, 4, 4, 12, 12)
    runs = encode_runs(truth)
    plain = decode_mask(runs, 16, 16)
    framed = decode_mask(runs, 16, 16, border=True)
    assert torch.equal(plain.bool(), torch.from_numpy(truth))
    frame = torch.ones(16, 16, dtype=torch.bool)
    frame[1:-1, 1:-1] = False
    assert torch.equal(framed.bool(), torch.from_numpy(truth) | frame)
    # A method that finds the annotated region exactly loses IoU against the framed mask.
    assert mask_iou(plain, plain) == 1.0 and mask_iou(plain, framed) == pytest.approx(64 / (64 + 60))


@pytest.mark.parametrize(
    "runs,problem",
    [
        ([0, 1, 2], "even number"),
        ([0, -1], "non-negative"),
        ([0, 1.5], "non-negative integer"),
        ([16, 1], "beyond the 4x4 image"),
        ("0 1", "even number"),
    ],
)
def test_malformed_runs_are_named(runs, problem: str) -> None:
    assert problem in run_problem(runs, 4, 4)
    assert run_problem([0, 16], 4, 4) is None


# ------------------------------------------------------------------------------------------
# Edit texts
# ------------------------------------------------------------------------------------------


def test_the_edited_phrase_covers_the_bracketed_words_and_the_blended_word() -> None:
    assert edited_phrase("a slanted [rusty] mountain bicycle on the road", "bicycle") == "rusty mountain bicycle"
    assert edited_phrase("a [pink] heart.", "heart") == "pink heart"
    assert edited_phrase("a [dog] sitting on a chair", "dog") == "dog"
    assert edited_phrase("a bird on a [tree] with bird", "bird") == "tree with bird"  # the nearest occurrence
    assert edited_phrase("a [dog] sitting", "zebra") == "dog"  # an anchor not in the prompt is ignored
    assert edited_phrase("a dog sitting", "dog") is None


def test_texts_follow_the_documented_rule_for_each_kind_of_edit() -> None:
    change = edit_texts("a [cat] sitting on a chair", "a [dog] sitting on a chair", "cat dog")
    assert (change.target, change.source) == ("dog", "cat")
    assert (change.source_prompt, change.target_prompt) == ("a cat sitting on a chair", "a dog sitting on a chair")
    attribute = edit_texts("a slanted mountain bicycle", "a slanted [rusty] mountain bicycle", "bicycle bicycle")
    assert (attribute.target, attribute.source) == ("rusty mountain bicycle", None)
    deletion = edit_texts("a cat [and a dog] on a sofa", "a cat on a sofa", "dog dog")
    assert (deletion.target, deletion.source) == ("a cat on a sofa", "and a dog")
    style = edit_texts("[a photo of] a bird", "[a watercolor of] a bird", "")
    assert (style.target, style.source) == ("a watercolor of", "a photo of")
    prompts = edit_texts("a [cat] sitting", "a [dog] sitting", "cat dog", texts="prompts")
    assert (prompts.target, prompts.source) == ("a dog sitting", "a cat sitting")


# ------------------------------------------------------------------------------------------
# The split
# ------------------------------------------------------------------------------------------


def test_the_ten_edit_types_add_up_to_the_benchmarks_700_items() -> None:
    assert [t.count for t in EDIT_TYPES] == [140, 80, 80, 80, 40, 40, 40, 40, 80, 80]
    assert sum(t.count for t in EDIT_TYPES) == 700
    assert all(t.folder.startswith(f"{t.id}_") and t.folder.endswith(f"_{t.count}") for t in EDIT_TYPES)


def test_items_carry_their_texts_edit_type_and_annotated_mask(tmp_path: Path) -> None:
    split = PieBenchSplit(str(write_pie_bench(tmp_path)))
    assert split.item_ids() == list(ITEMS) and split.has_masks
    item = split.load("111000000000")
    assert item.image.size == (SIZE, SIZE) and item.image.mode == "RGB"
    assert (item.target, item.source, item.prompt) == ("dog", "cat", "a cat sitting on a wooden chair")
    assert item.meta["edit_type"] == "1" and item.meta["edit_type_name"] == "change object"
    assert item.meta["target_prompt"] == "a dog sitting on a wooden chair"
    assert torch.equal(item.gt_mask.bool(), torch.from_numpy(item_mask("111000000000")))
    assert item.flags == ()
    framed = PieBenchSplit(str(tmp_path), mask_border=True).load("111000000000").gt_mask
    assert framed[0].all() and framed[:, -1].all() and framed.sum() > item.gt_mask.sum()


def test_edit_types_select_items(tmp_path: Path) -> None:
    split = PieBenchSplit(str(write_pie_bench(tmp_path)), edit_types=[1, 9])
    assert split.item_ids() == ["111000000000", "911000000000"]
    with pytest.raises(SplitInputError, match=r"unknown type\(s\) \[12\]"):
        PieBenchSplit(str(tmp_path), edit_types=[12])
    with pytest.raises(SplitInputError, match="no items of the edit types"):
        PieBenchSplit(str(tmp_path), edit_types=[5])


def test_without_a_root_the_split_says_in_one_sentence_where_to_get_it() -> None:
    with pytest.raises(MissingFilesError) as error:
        PieBenchSplit()
    message = str(error.value)
    assert pie_bench.DOWNLOAD_FORM in message and "dataset.root=" in message and "mapping_file.json" in message
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")


def test_a_root_without_the_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError, match="holds no mapping_file.json"):
        PieBenchSplit(str(tmp_path))


def test_every_bad_item_is_reported_together_before_anything_loads(tmp_path: Path) -> None:
    write_pie_bench(tmp_path)
    mapping = json.loads((tmp_path / "mapping_file.json").read_text())
    good = mapping["111000000000"]
    mapping["a-missing-image"] = {**good, "image_path": "1_change_object_80/nowhere.jpg"}
    mapping["b-bad-runs"] = {**good, "mask": [SIZE * SIZE, 3]}
    mapping["c-unknown-type"] = {**good, "editing_type_id": "10"}
    mapping["d-no-mask"] = {k: v for k, v in good.items() if k != "mask"}
    mapping["e-brackets"] = {**good, "editing_prompt": "a [dog sitting"}
    (tmp_path / "annotation_images" / "broken.jpg").write_bytes(b"not a jpeg")
    mapping["f-unreadable"] = {**good, "image_path": "broken.jpg"}
    (tmp_path / "mapping_file.json").write_text(json.dumps(mapping))
    with pytest.raises(SplitInputError) as error:
        PieBenchSplit(str(tmp_path))
    message = str(error.value)
    assert message.startswith("6 problem(s)")
    for needle in (
        "item a-missing-image: image file not found",
        "item b-bad-runs: mask run starts at pixel 4096",
        "item c-unknown-type: editing_type_id '10'",
        "item d-no-mask: missing field(s) mask",
        "item e-brackets: editing_prompt has unbalanced [brackets]",
        "item f-unreadable: unreadable image",
    ):
        assert needle in message, (needle, message)


def test_the_mapping_file_is_verified_when_its_checksum_is_set(tmp_path: Path, monkeypatch) -> None:
    write_pie_bench(tmp_path)
    digest = hashlib.sha256((tmp_path / "mapping_file.json").read_bytes()).hexdigest()
    monkeypatch.setattr(pie_bench, "MAPPING_SHA256", digest)
    assert len(PieBenchSplit(str(tmp_path)).item_ids()) == 3
    monkeypatch.setattr(pie_bench, "MAPPING_SHA256", "0" * 64)
    with pytest.raises(SplitInputError, match=f"has sha256 {digest}, not the published 0000"):
        PieBenchSplit(str(tmp_path))


def test_an_empty_mask_is_flagged_and_a_long_blended_word_noted(tmp_path: Path) -> None:
    items = {"000000000001": {**ITEMS["000000000000"], "box": (0, 0, 0, 0), "blended_word": "ice cream ice cream"}}
    item = PieBenchSplit(str(write_pie_bench(tmp_path, items))).load("000000000001")
    assert not item.gt_mask.any()
    assert any("4 words" in f for f in item.flags) and "empty ground-truth mask: IoU undefined" in item.flags


# ------------------------------------------------------------------------------------------
# run.py and the report
# ------------------------------------------------------------------------------------------


def test_the_report_breaks_a_split_down_by_edit_type_with_the_means_of_its_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = ResultsTable(tmp_path / "run" / "results.jsonl")
    types = {"0": "random", "1": "change object", "9": "change style"}
    for method in ("instdiffedit", "diffedit"):
        for index in range(12):
            type_id = list(types)[index % 3]
            table.append(
                {
                    "item_id": f"i{index}",
                    "method": method,
                    "config_id": method,
                    "dataset": "pie_bench",
                    "status": "ok",
                    "flags": "",
                    "param.model": "tiny",
                    "meta.edit_type": type_id,
                    "meta.edit_type_name": types[type_id],
                    "mask_iou": float(rng.uniform(0, 100)),
                    "seconds": 1.0,
                }
            )
    table.append(
        {
            "item_id": "i12",
            "method": "diffedit",
            "config_id": "diffedit",
            "dataset": "pie_bench",
            "status": "failed",
            "error": "RuntimeError: simulated",
            "param.model": "tiny",
            "seconds": 0.1,
        }
    )
    report = build_report([tmp_path / "run"], tmp_path / "report", only="tables")
    by_type = next(t for t in report.tables if t.name == "pie_bench_by_edit_type")
    numbers = by_type.numbers.set_index(["edit_type", "method"])
    rows = table.frame()
    ok = rows[rows["status"] == "ok"]
    expected = ok.groupby(["meta.edit_type", "method"])["mask_iou"].mean()
    for (type_id, method), mean in expected.items():
        assert numbers.loc[(f"{type_id} {types[type_id]}", method), "mask_iou"] == pytest.approx(mean)
    assert numbers.loc[("all", "diffedit"), "mask_iou"] == pytest.approx(ok[ok["method"] == "diffedit"]["mask_iou"].mean())
    assert numbers.loc[("all", "diffedit"), "failed"] == 1 and numbers.loc[("1 change object", "diffedit"), "failed"] == 0
    assert list(by_type.display["Edit type"].unique()) == ["0 random", "1 change object", "9 change style", "all"]
    assert any("count in 'all' only" in note for note in by_type.notes)
    assert (tmp_path / "report" / "tables" / "pie_bench_by_edit_type.tex").is_file()
    assert not any(t.name.endswith("_by_edit_type") and t.name != "pie_bench_by_edit_type" for t in report.tables)


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_run_py_without_a_root_stops_before_any_model_loads(tmp_path: Path) -> None:
    result = _run("run.py", "dataset=pie_bench", "model=sd14", "logger=none", f"paths.output_root={tmp_path}", timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert pie_bench.DOWNLOAD_FORM in message and "dataset.root=" in message
    assert "Loading pipeline components" not in result.stderr  # no model was loaded (an uncached one is named with the rest)


@pytest.mark.slow
def test_run_py_edits_a_pie_bench_folder_and_the_report_breaks_it_down_by_edit_type(tmp_path: Path) -> None:
    root = write_pie_bench(tmp_path / "PIE-Bench")
    out = tmp_path / "outputs"
    result = _run("run.py", "dataset=pie_bench", f"dataset.root={root}", "model=tiny", "logger=none", f"paths.output_root={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = ResultsTable(next(out.rglob("results.jsonl"))).frame()
    assert sorted(rows["item_id"]) == sorted(ITEMS) and (rows["status"] == "ok").all()
    assert sorted(rows["meta.edit_type"]) == ["0", "1", "9"] and rows["mask_iou"].notna().all()

    report = _run("-m", "benchmarks.report", str(out), "--out", str(tmp_path / "report"), "--only", "tables")
    assert report.returncode == 0, report.stderr[-3000:]
    table = (tmp_path / "report" / "tables" / "pie_bench_by_edit_type.md").read_text()
    for label in ("0 random", "1 change object", "9 change style", "| all "):
        assert label in table, table
    assert (tmp_path / "report" / "tables" / "pie_bench_by_edit_type.tex").is_file()
    numbers = pd.read_csv(tmp_path / "report" / "tables" / "pie_bench_by_edit_type.csv")
    by_type = numbers.set_index("edit_type")["mask_iou"]
    ours = rows.set_index("meta.edit_type")["mask_iou"]
    assert by_type["1 change object"] == pytest.approx(ours["1"])
    assert by_type["all"] == pytest.approx(rows["mask_iou"].mean())
