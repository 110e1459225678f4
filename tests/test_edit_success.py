"""Edit success on the toy split: the exact edit succeeds, no edit fails, other splits get no column."""

from __future__ import annotations

import pytest
import torch

from benchmarks.data.items import EditItem
from benchmarks.toy.split import ToyShapesSplit
from benchmarks.toy.success import EditSuccess
from instdiffedit.types import EditResult


@pytest.fixture(scope="module")
def split() -> ToyShapesSplit:
    return ToyShapesSplit(n=40)


@pytest.fixture(scope="module")
def metric() -> EditSuccess:
    return EditSuccess()


def _result(image) -> EditResult:
    return EditResult(image=image, mask=None)


def test_the_exact_edited_scene_counts_as_a_success(split: ToyShapesSplit, metric: EditSuccess) -> None:
    scores = [metric(split.load(i), _result(split.expected_image(i)))["edit_success"] for i in split.item_ids()]
    assert sum(scores) / len(scores) >= 0.9


def test_returning_the_input_unchanged_counts_as_a_failure(split: ToyShapesSplit, metric: EditSuccess) -> None:
    scores = [metric(item, _result(item.image))["edit_success"] for item in map(split.load, split.item_ids())]
    assert sum(scores) / len(scores) <= 0.1


def test_background_edits_are_judged_by_the_background_colour(split: ToyShapesSplit, metric: EditSuccess) -> None:
    background_ids = [i for i in split.item_ids() if split.load(i).meta["edit_kind"] == "background"]
    assert background_ids, "the split should hold background edits"
    for item_id in background_ids:
        assert metric(split.load(item_id), _result(split.expected_image(item_id))) == {"edit_success": 1.0}


def test_items_of_other_splits_get_no_column(split: ToyShapesSplit, metric: EditSuccess) -> None:
    item = split.load("toy-00000")
    other = EditItem(id="x", image=item.image, target="a dog", gt_mask=torch.ones(64, 64))
    assert metric(other, _result(item.image)) == {}
