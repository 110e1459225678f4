"""The inpainting twin's training masks: boxes, blobs, objects, background and the whole image, drawn on the device."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.toy.render import render, sample_layouts
from benchmarks.toy.training.masks import DEFAULT_MASK_SHARES, MASK_KINDS, MaskSampler


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    _, masks = render(sample_layouts(64, torch.Generator().manual_seed(3)))
    return masks


def draw(kind: str, objects: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    return MaskSampler({kind: 1.0})(objects)[:, 0].bool()


def test_box_masks_are_filled_rectangles(scenes) -> None:
    masks = draw("box", scenes)
    rows, cols = masks.any(2), masks.any(1)
    assert torch.equal(masks, rows[:, :, None] & cols[:, None, :])
    assert masks.flatten(1).float().mean(1).min() > 0.15**2 * 0.5


def test_blob_masks_are_smooth_regions_that_are_not_rectangles(scenes) -> None:
    masks = draw("blob", scenes)
    rectangles = masks.any(2)[:, :, None] & masks.any(1)[:, None, :]
    assert (masks != rectangles).flatten(1).any(1).float().mean() > 0.8
    edges = (masks[:, 1:] != masks[:, :-1]).sum() + (masks[:, :, 1:] != masks[:, :, :-1]).sum()
    assert edges / masks.sum() < 0.3  # a few lobes, not speckle


def test_object_masks_cover_one_object_and_stay_within_four_pixels_of_it(scenes) -> None:
    masks = draw("object", scenes)
    covered = (scenes & masks[:, None]).flatten(2).sum(2) == scenes.flatten(2).sum(2)
    present = scenes.flatten(2).any(2)
    assert ((covered & present).sum(1) >= 1).all()
    within = F.max_pool2d(scenes.any(1, keepdim=True).float(), 9, 1, 4)[:, 0].bool()
    assert not (masks & ~within).any()


def test_background_masks_are_everything_but_the_objects(scenes) -> None:
    assert torch.equal(draw("background", scenes), ~scenes.any(1))


def test_whole_image_masks_cover_everything(scenes) -> None:
    assert draw("whole", scenes).all()


def test_the_default_shares_draw_every_kind_about_as_often_as_stated() -> None:
    torch.manual_seed(0)
    kinds = MaskSampler(DEFAULT_MASK_SHARES).kinds(20000)
    for index, kind in enumerate(MASK_KINDS):
        assert abs((kinds == index).float().mean().item() - DEFAULT_MASK_SHARES[kind]) < 0.015


def test_an_unknown_mask_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="circle"):
        MaskSampler({"circle": 1.0})
