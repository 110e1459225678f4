"""The item loop: one row per item as soon as it is done, resume, shards, failures, summary."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace

import numpy
import PIL.Image
import pytest
import torch

from benchmarks.data.items import EditItem
from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.metrics.per_item import MaskIoU
from benchmarks.run.folder import Shard
from benchmarks.run.interrupts import Aborted, Interrupted
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, config_hash, item_seed, run, summarize
from instdiffedit import Capabilities, EditResult
from instdiffedit.backbones import ALL_FAMILIES


class GroundTruthEditor:
    """A stand-in method that returns the input and the ground-truth mask; records its calls."""

    capabilities = Capabilities(families=ALL_FAMILIES)

    def __init__(
        self,
        dataset: SyntheticDataset,
        fail_on: set[str] = frozenset(),
        interrupt_on: str | None = None,
        signals: dict[str, list[signal.Signals]] | None = None,
    ):
        self.dataset, self.fail_on, self.interrupt_on, self.signals = dataset, fail_on, interrupt_on, signals or {}
        self.calls: list[str] = []

    def edit(self, image, *, target, source=None, prompt=None, mask=None, generator=None) -> EditResult:
        item = next(i for i in map(self.dataset.load, self.dataset.item_ids()) if i.image.tobytes() == image.tobytes())
        self.calls.append(item.id)
        for number in self.signals.get(item.id, ()):
            os.kill(os.getpid(), number)  # a real signal, as Ctrl-C or SLURM sends it
        if item.id == self.interrupt_on:
            raise KeyboardInterrupt
        if item.id in self.fail_on:
            raise RuntimeError("CUDA out of memory (simulated)")
        return EditResult(image, mask=item.gt_mask, timings={"total": 0.01}, denoiser_evals=250)


def _run(dataset, editor, table, shard=Shard(), seed=1):
    spec = RunSpec(method="gt", config_id="cfg", master_seed=seed, params={"threshold": 0.2}, shard=shard)
    return run(editor, dataset, table, spec, metrics={"mask_iou": MaskIoU()})


@pytest.fixture
def dataset() -> SyntheticDataset:
    return SyntheticDataset(n=5, size=32, seed=3)


def test_every_item_gets_one_row_with_its_metrics(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    summary = _run(dataset, GroundTruthEditor(dataset), table)
    frame = table.frame()
    assert sorted(frame["item_id"]) == dataset.item_ids()
    assert (frame["mask_iou"] == 100.0).all() and (frame["denoiser_evals"] == 250).all()
    assert (frame["param.threshold"] == 0.2).all()
    assert summary.loc[("gt", "cfg"), "items"] == 5 and summary.loc[("gt", "cfg"), "mask_iou"] == 100.0


def test_a_second_run_skips_the_items_already_done(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    _run(dataset, GroundTruthEditor(dataset), table)
    again = GroundTruthEditor(dataset)
    _run(dataset, again, table)
    assert again.calls == [] and len(table.rows()) == 5


def test_an_interrupt_loses_only_the_item_in_flight_and_the_rerun_completes(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, GroundTruthEditor(dataset, interrupt_on="synthetic-00002"), table)
    assert [r["item_id"] for r in table.rows()] == ["synthetic-00000", "synthetic-00001"]
    resumed = GroundTruthEditor(dataset)
    _run(dataset, resumed, table)
    assert resumed.calls == ["synthetic-00002", "synthetic-00003", "synthetic-00004"]
    assert sorted(table.frame()["item_id"]) == dataset.item_ids() and len(table.rows()) == 5


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_the_first_stop_signal_finishes_and_writes_the_batch_in_flight_then_stops(dataset, tmp_path, number) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    editor = GroundTruthEditor(dataset, signals={"synthetic-00002": [number]})
    with pytest.raises(Interrupted) as stopped:
        run(editor, dataset, table, RunSpec(method="gt", config_id="cfg", master_seed=1, batch_size=2))
    assert editor.calls == dataset.item_ids()[:4], "the batch of items 2 and 3 is finished, item 4 never started"
    assert [r["item_id"] for r in table.rows()] == dataset.item_ids()[:4]
    assert (stopped.value.signal, stopped.value.written, stopped.value.left) == (number, 4, 1)
    assert stopped.value.exit_code == 128 + number and "run the same command again" in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the run's handlers are gone once it stops"


def test_a_second_stop_signal_aborts_at_once_and_keeps_the_rows_written_before(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    editor = GroundTruthEditor(dataset, signals={"synthetic-00002": [signal.SIGINT, signal.SIGTERM]})
    with pytest.raises(Aborted) as aborted:
        run(editor, dataset, table, RunSpec(method="gt", config_id="cfg", master_seed=1, batch_size=2))
    assert aborted.value.exit_code == 128 + signal.SIGTERM
    assert editor.calls == dataset.item_ids()[:3]
    assert [r["item_id"] for r in table.rows()] == dataset.item_ids()[:2]


class BatchEditor(GroundTruthEditor):
    capabilities = replace(GroundTruthEditor.capabilities, batched=True)

    def edit_batch(self, images, *, targets, sources, prompts, masks, generators) -> list[EditResult]:
        return [self.edit(image, target=t, mask=m) for image, t, m in zip(images, targets, masks)]


def test_inside_a_batch_each_items_row_is_on_disk_before_the_next_items_metrics_run(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    seen = []

    def rows_on_disk(item, result) -> dict[str, float]:
        seen.append(len(table.rows()))
        return {}

    run(BatchEditor(dataset), dataset, table, RunSpec(method="gt", config_id="cfg", master_seed=1, batch_size=5), metrics={"probe": rows_on_disk})
    assert seen == [0, 1, 2, 3, 4]
    assert (table.frame()["batch_size"] == 5).all()


def test_a_failing_item_is_recorded_and_the_run_goes_on_and_a_rerun_retries_it(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    summary = _run(dataset, GroundTruthEditor(dataset, fail_on={"synthetic-00001"}), table)
    failed = table.frame().set_index("item_id").loc["synthetic-00001"]
    assert failed["status"] == "failed" and "out of memory" in failed["error"]
    assert summary.loc[("gt", "cfg"), "failed"] == 1 and summary.loc[("gt", "cfg"), "mask_iou"] == 100.0

    retry = GroundTruthEditor(dataset)
    summary = _run(dataset, retry, table)
    assert retry.calls == ["synthetic-00001"]
    assert summary.loc[("gt", "cfg"), "failed"] == 0 and summary.loc[("gt", "cfg"), "items"] == 5


def test_a_torn_last_line_is_skipped_when_reading(tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    table.append({"item_id": "a", "method": "m", "config_id": "c", "status": "ok"})
    with table.path.open("a") as f:
        f.write('{"item_id": "b", "meth')
    assert [r["item_id"] for r in table.rows()] == ["a"]


def test_a_resume_after_a_torn_last_line_redoes_its_item_keeps_the_fragment_and_counts_every_item(dataset, tmp_path, caplog) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    _run(dataset, GroundTruthEditor(dataset), table)
    whole = table.path.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[1]
    table.path.write_bytes(whole[: len(whole) - len(last) // 2 - 1])  # the last row cut in half, no newline
    fragment = table.path.read_bytes().rsplit(b"\n", 1)[1]

    resumed = GroundTruthEditor(dataset)
    summary = _run(dataset, resumed, ResultsTable(table.path))
    assert resumed.calls == ["synthetic-00004"]
    assert [json.loads(line)["item_id"] for line in table.path.read_text().splitlines()] == dataset.item_ids()
    assert summary.loc[("gt", "cfg"), "items"] == 5
    torn = tmp_path / "results.jsonl.torn"
    assert torn.read_bytes() == fragment + b"\n", "the torn line is kept aside, never dropped"
    assert any(str(torn) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_appends_start_on_a_fresh_line_even_after_a_torn_one(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"item_id": "a", "method": "m", "config_id": "c", "status": "ok"}\n{"item_id": "b", "me')
    ResultsTable(path).append({"item_id": "c", "method": "m", "config_id": "c", "status": "ok"})
    assert [r["item_id"] for r in ResultsTable(path).rows()] == ["a", "c"]
    assert (tmp_path / "results.jsonl.torn").read_text() == '{"item_id": "b", "me\n'


def test_shards_are_disjoint_and_together_cover_the_split(dataset) -> None:
    ids = dataset.item_ids()
    shards = [Shard(i, 3).select(ids) for i in range(3)]
    assert sorted(sum(shards, [])) == ids and len(set(sum(shards, []))) == len(ids)
    assert Shard(1, 3).select(ids) == Shard(1, 3).select(ids)
    with pytest.raises(ValueError, match="shard.index"):
        Shard(3, 3)


def test_sharded_runs_write_separate_files_with_the_same_rows_as_one_run(dataset, tmp_path) -> None:
    whole = ResultsTable(tmp_path / "whole" / Shard().results_name)
    _run(dataset, GroundTruthEditor(dataset), whole)
    parts = []
    for index in range(2):
        shard = Shard(index, 2)
        table = ResultsTable(tmp_path / "sharded" / shard.results_name)
        _run(dataset, GroundTruthEditor(dataset), table, shard=shard)
        parts += table.rows()
    assert len({r["item_id"] for r in parts}) == 5
    by_id = {r["item_id"]: r["seed"] for r in whole.rows()}
    assert all(by_id[r["item_id"]] == r["seed"] for r in parts)  # seeds do not depend on sharding


def test_items_done_by_other_shards_of_the_run_are_skipped(dataset, tmp_path) -> None:
    editor = GroundTruthEditor(dataset)
    run(
        editor,
        dataset,
        ResultsTable(tmp_path / "results.jsonl"),
        RunSpec(method="gt", config_id="cfg", master_seed=1),
        done_elsewhere={"synthetic-00001", "synthetic-00003"},
    )
    assert editor.calls == ["synthetic-00000", "synthetic-00002", "synthetic-00004"]


def test_item_seeds_depend_on_the_master_seed_and_the_item_only() -> None:
    assert item_seed(1, "x") == item_seed(1, "x") != item_seed(2, "x") != item_seed(1, "y")
    assert 0 <= item_seed(4623523532252, "ILSVRC2012_val_00000001.JPEG") < 2**63


def test_config_hash_is_stable_and_sensitive() -> None:
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1}) != config_hash({"a": 1, "b": 3})


def test_summary_marks_methods_without_masks_as_nan() -> None:
    import pandas as pd

    frame = pd.DataFrame([{"item_id": "a", "method": "sdedit", "config_id": "c", "status": "ok", "mask_iou": math.nan, "seconds": 1.0, "denoiser_evals": 50}])
    assert math.isnan(summarize(frame).loc[("sdedit", "c"), "mask_iou"])


def test_synthetic_items_are_reproducible_and_their_masks_match_their_pixels(dataset) -> None:
    item: EditItem = dataset.load("synthetic-00001")
    again = SyntheticDataset(n=5, size=32, seed=3).load("synthetic-00001")
    assert item.image.tobytes() == again.image.tobytes() and item.target == again.target
    pixels = torch.tensor(numpy.array(item.image), dtype=torch.float32)
    inside = pixels[item.gt_mask.bool()]
    assert (inside == inside[0]).all()  # the shape is one flat colour
    assert item.source != item.target
    with pytest.raises(KeyError, match="synthetic-00099"):
        dataset.load("synthetic-00099")


def test_a_split_can_be_browsed_as_a_hugging_face_dataset(dataset, tmp_path, monkeypatch) -> None:
    from benchmarks.data.items import to_hf_dataset

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    hf = to_hf_dataset(dataset)
    assert hf.num_rows == 5 and hf[1]["id"] == "synthetic-00001"
    assert hf[1]["image"].size == (32, 32) and hf[1]["target"] == dataset.load("synthetic-00001").target
    assert numpy.array(hf[1]["mask"]).sum() == dataset.load("synthetic-00001").gt_mask.sum() * 255


class PairCounter:
    """A corpus metric that counts the (item, saved edit) pairs it sees and checks they match."""

    def compute(self, pairs):
        pairs = list(pairs)
        assert all(edited.size == item.image.size for item, edited in pairs)
        return {"pairs": float(len(pairs))}


def test_corpus_metrics_cover_every_item_done_including_earlier_runs(dataset, tmp_path) -> None:
    table = ResultsTable(tmp_path / "results.jsonl")
    spec, corpus = RunSpec(method="gt", config_id="cfg", master_seed=1, image_dir=tmp_path / "images"), {"count": PairCounter()}
    with pytest.raises(KeyboardInterrupt):
        run(GroundTruthEditor(dataset, interrupt_on="synthetic-00003"), dataset, table, spec, corpus_metrics=corpus)
    summary = run(GroundTruthEditor(dataset), dataset, table, spec, corpus_metrics=corpus)
    assert summary.loc[("gt", "cfg"), "pairs"] == 5


def test_corpus_metrics_without_saved_images_are_refused(dataset, tmp_path) -> None:
    with pytest.raises(ValueError, match="save_images"):
        spec = RunSpec(method="gt", config_id="c", master_seed=1)
        run(GroundTruthEditor(dataset), dataset, ResultsTable(tmp_path / "r.jsonl"), spec, corpus_metrics={"count": PairCounter()})


def test_saved_images_hold_what_a_report_draws(dataset, tmp_path) -> None:
    class WithHistory(GroundTruthEditor):
        capabilities = replace(GroundTruthEditor.capabilities, mask_history=True)

        def edit(self, image, **kwargs) -> EditResult:
            result = super().edit(image, **kwargs)
            result.mask_history = torch.zeros(3, 4, 4, dtype=torch.bool)
            return result

    spec = RunSpec(method="gt", config_id="c", master_seed=1, image_dir=tmp_path / "images")
    run(WithHistory(dataset), dataset, ResultsTable(tmp_path / "r.jsonl"), spec)
    item = dataset.load("synthetic-00000")
    folder = tmp_path / "images" / item.id
    assert {p.name for p in folder.iterdir()} == {"edit.png", "input.png", "mask.png", "gt.png", "steps.npz"}
    assert PIL.Image.open(folder / "input.png").tobytes() == item.image.tobytes()
    gt = numpy.asarray(PIL.Image.open(folder / "gt.png")) / 255
    assert numpy.array_equal(gt, item.gt_mask.numpy())
    assert numpy.load(folder / "steps.npz")["masks"].shape == (3, 4, 4)
