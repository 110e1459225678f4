"""The fast paths give what the plain path gives: channels_last, batched edits, the runner's
throughput mode, and (slow) a compiled UNet. On the tiny model, on the CPU (CUDA graphs:
tests/test_graphs.py)."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import torch

from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.metrics.per_item import MaskIoU
from benchmarks.models.tiny import tiny_pipelines
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, item_seed, run
from instdiffedit import Capabilities, EditResult, InstDiffEdit
from instdiffedit.backbones import ALL_FAMILIES
from instdiffedit.fast_paths import set_fast_path

STEPS = 10  # strength 0.5: 5 guided steps
INPAINT_STEPS = 4


@pytest.fixture(scope="module")
def dataset() -> SyntheticDataset:
    return SyntheticDataset(n=3, size=64, seed=5)


def _editor(pipes) -> InstDiffEdit:
    return InstDiffEdit(pipes.base, pipes.inpaint, num_inference_steps=STEPS, inpaint_steps=INPAINT_STEPS)


def _edit(editor, item, seed: int = 11) -> EditResult:
    return editor.edit(item.image, target=item.target, generator=torch.Generator().manual_seed(seed))


def test_channels_last_gives_the_plain_paths_masks_and_image(tiny, dataset, _private_cache: Path) -> None:
    item = dataset.load(dataset.item_ids()[0])
    plain = _edit(_editor(tiny), item)
    fast_pipes = tiny_pipelines(_private_cache, device="cpu", channels_last=True)
    assert fast_pipes.base.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    fast = _edit(_editor(fast_pipes), item)
    assert torch.equal(fast.mask_history, plain.mask_history)
    assert torch.equal(fast.mask, plain.mask)
    assert numpy.abs(numpy.asarray(fast.image, float) - numpy.asarray(plain.image, float)).max() <= 2


def test_a_batch_of_items_gets_each_items_own_masks_and_images(tiny, dataset) -> None:
    editor = _editor(tiny)
    items = [dataset.load(i) for i in dataset.item_ids()]
    alone = [_edit(editor, item, seed=20 + k) for k, item in enumerate(items)]
    together = editor.edit_batch(
        [item.image for item in items],
        targets=[item.target for item in items],
        generators=[torch.Generator().manual_seed(20 + k) for k in range(len(items))],
    )
    assert len({item.target for item in items}) > 1, "the items should have different texts"
    for one, batched in zip(alone, together, strict=True):
        assert torch.equal(batched.mask_history, one.mask_history)
        assert torch.equal(batched.mask, one.mask)
        assert numpy.abs(numpy.asarray(batched.image, float) - numpy.asarray(one.image, float)).max() <= 2
        assert batched.denoiser_evals == one.denoiser_evals


def test_the_runners_throughput_mode_writes_the_rows_of_one_at_a_time(tiny, dataset, tmp_path) -> None:
    tables = {}
    for batch_size in (1, 2):
        tables[batch_size] = ResultsTable(tmp_path / f"b{batch_size}.jsonl")
        spec = RunSpec(method="instdiffedit", config_id="c", master_seed=3, batch_size=batch_size)
        run(_editor(tiny), dataset, tables[batch_size], spec, metrics={"mask_iou": MaskIoU()})
    one, batched = (tables[b].frame().set_index("item_id").sort_index() for b in (1, 2))
    assert list(batched.index) == dataset.item_ids() and (batched["status"] == "ok").all()
    assert list(batched["seed"]) == [item_seed(3, i) for i in dataset.item_ids()]
    assert batched["mask_iou"].tolist() == one["mask_iou"].tolist()
    assert batched["denoiser_evals"].tolist() == one["denoiser_evals"].tolist()
    assert batched["batch_size"].tolist() == [2, 2, 1]  # 3 items: one batch of 2, then one alone


class _BatchFails:
    """An editor whose batches always fail and whose single edits fail for one image."""

    capabilities = Capabilities(families=ALL_FAMILIES, batched=True)

    def __init__(self, bad_image) -> None:
        self.bad = bad_image.tobytes()

    def edit_batch(self, images, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    def edit(self, image, *, target, generator=None, **kwargs) -> EditResult:
        if image.tobytes() == self.bad:
            raise ValueError("bad item")
        return EditResult(image, timings={"total": 0.1}, denoiser_evals=1)


def test_a_failing_batch_is_redone_one_item_at_a_time(dataset, tmp_path) -> None:
    bad = dataset.load(dataset.item_ids()[1])
    table = ResultsTable(tmp_path / "r.jsonl")
    run(_BatchFails(bad.image), dataset, table, RunSpec(method="m", config_id="c", master_seed=0, batch_size=3))
    status = table.frame().set_index("item_id")["status"]
    assert status[bad.id] == "failed"
    assert (status.drop(bad.id) == "ok").all()


@pytest.mark.slow
def test_a_compiled_unet_gives_the_plain_paths_masks(tiny, dataset, _private_cache: Path) -> None:
    """fast_path="compiled" on a CPU (inductor, no graphs): same masks and images as eager, and
    a second edit runs without recompiling (the capture processors are reused)."""
    item = dataset.load(dataset.item_ids()[0])
    editor = InstDiffEdit(tiny_pipelines(_private_cache, device="cpu", inpaint=False).base, None, num_inference_steps=4, output="decode")
    plain = _edit(editor, item)
    set_fast_path(editor.backbone.denoiser, "compiled")
    torch._dynamo.utils.counters.clear()
    compiled = _edit(editor, item)
    frames = sum(torch._dynamo.utils.counters["frames"].values())
    again = _edit(editor, item)
    assert frames > 0, "the UNet was not compiled"
    assert sum(torch._dynamo.utils.counters["frames"].values()) == frames, "the second edit recompiled"
    assert torch.equal(compiled.mask_history, plain.mask_history) and torch.equal(again.mask, plain.mask)
    assert numpy.abs(numpy.asarray(compiled.image, float) - numpy.asarray(plain.image, float)).max() <= 2
