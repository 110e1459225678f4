"""A run remembers what it edited: each row records its item's fingerprint, and a resumed run redoes
the items whose image, mask or texts changed since, keeping their old rows aside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import PIL.Image
import pytest

from benchmarks.data.folder_split import FolderSplit
from benchmarks.metrics.per_item import MaskIoU
from benchmarks.run.changed import FINGERPRINT
from benchmarks.run.folder import RunFolder, Shard
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, run
from instdiffedit import Capabilities, EditResult
from instdiffedit.backbones import ALL_FAMILIES


class RecordingEditor:
    """Returns the input unchanged, with the ground-truth mask; records each target it edits."""

    capabilities = Capabilities(families=ALL_FAMILIES)

    def __init__(self) -> None:
        self.targets: list[str] = []

    def edit(self, image, *, target, source=None, prompt=None, mask=None, generator=None) -> EditResult:
        self.targets.append(target)
        return EditResult(image, mask=mask, timings={"total": 0.0}, denoiser_evals=1)


def _folder(tmp_path: Path) -> Path:
    for shade, name in enumerate(("cat", "dog", "owl"), 1):
        PIL.Image.new("RGB", (16, 16), (40 * shade, 0, 0)).save(tmp_path / f"{name}.png")
        PIL.Image.new("L", (16, 16), 255).save(tmp_path / f"{name}_mask.png")
    manifest = tmp_path / "items.csv"
    manifest.write_text("image,mask,target\ncat.png,cat_mask.png,a lion\ndog.png,dog_mask.png,a wolf\nowl.png,owl_mask.png,an eagle\n")
    return manifest


def _run(manifest: Path, results: Path, shard: Shard | None = None) -> RecordingEditor:
    editor = RecordingEditor()
    spec = RunSpec(method="m", config_id="c", master_seed=0, shard=shard or Shard())
    done_elsewhere = RunFolder(results.parent).completed_elsewhere("m", "c", results.name)  # as the harness passes it
    run(editor, FolderSplit(str(manifest)), ResultsTable(results), spec, metrics={"mask_iou": MaskIoU()}, done_elsewhere=done_elsewhere)
    return editor


def test_every_row_records_its_items_fingerprint(tmp_path: Path) -> None:
    manifest = _folder(tmp_path)
    _run(manifest, tmp_path / "run" / "results.jsonl")
    rows = ResultsTable(tmp_path / "run" / "results.jsonl").rows()
    split = FolderSplit(str(manifest))
    assert [row[FINGERPRINT] for row in rows] == [split.fingerprint(i) for i in ("cat", "dog", "owl")]
    assert len({row[FINGERPRINT] for row in rows}) == 3


def test_a_resumed_run_redoes_items_whose_image_mask_or_text_changed_and_keeps_their_old_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = _folder(tmp_path)
    results = tmp_path / "run" / "results.jsonl"
    _run(manifest, results)
    assert _run(manifest, results).targets == []  # nothing changed: nothing to do
    PIL.Image.new("RGB", (16, 16), (0, 0, 200)).save(tmp_path / "cat.png")  # edited in place, same path
    PIL.Image.new("L", (16, 16), 0).save(tmp_path / "owl_mask.png")
    manifest.write_text(manifest.read_text().replace("a wolf", "a fox"))
    with caplog.at_level(logging.INFO, logger="benchmarks.run.runner"):
        editor = _run(manifest, results)
    assert sorted(editor.targets) == ["a fox", "a lion", "an eagle"]
    assert "3 item(s) changed since their rows were written" in caplog.text
    assert "3 items to do" in caplog.text
    rows = ResultsTable(results).rows()
    assert len(rows) == 3 and {r["target"] for r in rows} == {"a lion", "a fox", "an eagle"}
    aside = [json.loads(line) for line in (results.parent / "results.jsonl.stale").read_text().splitlines()]
    assert sorted(r["target"] for r in aside) == ["a lion", "a wolf", "an eagle"]
    assert _run(manifest, results).targets == []


def test_a_changed_items_rows_in_another_shardings_file_are_set_aside_too(tmp_path: Path) -> None:
    manifest = _folder(tmp_path)
    run_dir = tmp_path / "run"
    for index in range(2):
        _run(manifest, run_dir / Shard(index, 2).results_name, Shard(index, 2))
    manifest.write_text(manifest.read_text().replace("a wolf", "a fox"))  # dog: shard 1 of 2
    editor = _run(manifest, run_dir / "results.jsonl")  # unsharded now, over the same folder
    assert editor.targets == ["a fox"]
    shard_file = run_dir / Shard(1, 2).results_name
    assert [r["item_id"] for r in ResultsTable(shard_file).rows()] == []
    assert [json.loads(line)["target"] for line in shard_file.with_name(shard_file.name + ".stale").read_text().splitlines()] == ["a wolf"]


def test_rows_of_earlier_versions_without_a_fingerprint_are_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = _folder(tmp_path)
    results = tmp_path / "run" / "results.jsonl"
    _run(manifest, results)
    rows = [{k: v for k, v in row.items() if k != FINGERPRINT} for row in ResultsTable(results).rows()]
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level(logging.INFO, logger="benchmarks.run.runner"):
        assert _run(manifest, results).targets == []
    assert "3 row(s) were written before rows recorded their item's fingerprint" in caplog.text
