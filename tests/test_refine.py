"""Mask refinement from attention maps: indexing, aggregation, blur and threshold."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.metrics.functional import mask_iou
from instdiffedit.refine import (
    MaskRefiner,
    aggregate,
    minmax,
    word_maps,
    word_positions,
)
from instdiffedit.tokens import TokenLayout

SIZE = 64  # latent size; attention comes at 16 x 16


def _disc(side: int, cy: float, cx: float, radius: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= radius**2).float()


def _noisy_attention(seed: int) -> tuple[torch.Tensor, torch.Tensor, TokenLayout]:
    """16 x 16 x 77 maps for "a fluffy raccoon on grass", shaped like real attention.

    The object words light up the object but also leak onto the background and carry
    speckle noise; the start token and "grass" attend to the background; "a" and "on" are
    noise. Returns the attention, the object's mask at latent size, and the token layout.
    """
    gen = torch.Generator().manual_seed(seed)
    truth = _disc(SIZE, 24, 38, 13)
    obj = F.interpolate(truth[None, None], size=(16, 16), mode="area")[0, 0]
    noise = lambda scale: scale * torch.rand(16, 16, generator=gen)  # noqa: E731
    speckle = lambda: 0.6 * (torch.rand(16, 16, generator=gen) < 0.06).float()  # noqa: E731
    leak = 0.3 * (1 - obj) * torch.linspace(0.2, 1.0, 16)[None, :]
    attention = torch.rand(16, 16, 77, generator=gen) * 0.01
    attention[..., 0] = 1.0 - 0.7 * obj + noise(0.2)  # start token: background
    attention[..., 1] = noise(1.0)  # "a"
    attention[..., 2] = obj + leak + speckle() + noise(0.15)  # "fluffy", split into two tokens
    attention[..., 3] = obj + leak + speckle() + noise(0.15)
    attention[..., 4] = obj + leak + speckle() + noise(0.15)  # "raccoon"
    attention[..., 5] = noise(1.0)  # "on"
    attention[..., 6] = (1 - obj) + noise(0.1)  # "grass"
    attention[..., 7] = 0.2 + noise(0.3)  # end token
    layout = TokenLayout(words=("a", "fluffy", "raccoon", "on", "grass"), spans=((1,), (2, 3), (4,), (5,), (6,)), end=7)
    return attention, truth, layout


@pytest.mark.parametrize("seed", range(5))
def test_refined_mask_finds_a_noisy_object_better_than_the_raw_word_map(seed: int) -> None:
    attention, truth, layout = _noisy_attention(seed)
    refiner = MaskRefiner()
    maps = word_maps(attention, layout, (SIZE, SIZE))
    _, refined = refiner(maps, refiner.positions(maps))
    raw = (maps[3] > refiner.threshold).float()  # "raccoon"'s map thresholded as is

    assert mask_iou(refined, truth) >= 0.8
    assert mask_iou(refined, truth) > mask_iou(raw, truth) + 0.1


@pytest.mark.parametrize("arithmetic", ["authors", "float"])
def test_a_split_word_gets_the_map_of_its_tokens_mean(arithmetic: str) -> None:
    attention = torch.rand(16, 16, 77, generator=torch.Generator().manual_seed(3))
    split = TokenLayout(words=("shiba",), spans=((2, 3),), end=4)
    maps = word_maps(attention, split, (SIZE, SIZE), arithmetic)
    assert maps.shape == (3, SIZE, SIZE)  # start, "shiba", end

    merged = attention.clone()
    merged[..., 2] = attention[..., 2:4].mean(-1)
    plain = word_maps(merged, TokenLayout(words=("shiba",), spans=((2,),), end=4), (SIZE, SIZE), arithmetic)
    torch.testing.assert_close(maps, plain)


@pytest.mark.parametrize("arithmetic", ["authors", "float"])
def test_the_start_tokens_map_is_inverted_to_highlight_the_object(arithmetic: str) -> None:
    attention, truth, layout = _noisy_attention(0)
    maps = word_maps(attention, layout, (SIZE, SIZE), arithmetic)
    assert mask_iou(maps[0] > 0.5, truth) > 0.8


def test_positions_mark_the_object_words_positive_and_the_background_words_negative() -> None:
    obj = _disc(SIZE, 20, 20, 10)
    background = 1 - obj
    maps = torch.stack([obj, obj, obj * 0.9 + 0.05, background, torch.full_like(obj, 0.5)])  # inverted start first
    positions = word_positions(maps, th1=0.9, th2=0.6)
    assert positions.tolist() == [0, 1, 1, -1, 0]  # start and end tokens are never chosen


@pytest.mark.parametrize("seed", range(20))
def test_the_key_word_is_positive_even_when_th1_is_1(seed: int) -> None:
    """cos(k*, k*) rounds below 1 in about 4 of 10 cases; the authors set k*'s score to 1."""
    maps = torch.rand(6, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    positions = word_positions(maps, th1=1.0, th2=0.6)
    assert (positions == 1).sum() >= 1
    _, binary = MaskRefiner(th1=1.0)(maps, positions)
    assert binary.sum() > 0


def test_aggregation_subtracts_the_background_words() -> None:
    obj = _disc(SIZE, 20, 20, 10)
    leaky = minmax(obj + 0.5 * _disc(SIZE, 50, 50, 8))  # the object word also lights up a second region
    other = _disc(SIZE, 50, 50, 8)
    maps = torch.stack([1 - obj, leaky, other, torch.zeros_like(obj)])
    with_background = aggregate(maps, torch.tensor([0, 1, -1, 0]))
    without_background = aggregate(maps, torch.tensor([0, 1, 0, 0]))
    assert with_background[50, 50] == 0 and without_background[50, 50] > 0.3
    torch.testing.assert_close(without_background, leaky)


def test_minmax_maps_a_constant_map_to_zeros() -> None:
    assert minmax(torch.full((1, 8, 8), 3.0)).abs().max() == 0


def test_a_single_word_uses_its_own_map() -> None:
    obj = _disc(SIZE, 30, 30, 12)
    maps = torch.stack([1 - obj, obj, torch.rand(SIZE, SIZE)])
    refiner = MaskRefiner(blur_passes=0)
    soft, binary = refiner(maps, refiner.positions(maps))
    torch.testing.assert_close(soft, minmax(obj))
    assert mask_iou(binary, obj) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"th1": 0.5, "th2": 0.6}, {"threshold": 1.0}, {"blur_kernel": 4}, {"blur_passes": -1}, {"arithmetic": "fast"}],
    ids=["th2>th1", "phi=1", "even-kernel", "negative-passes", "unknown-arithmetic"],
)
def test_refiner_rejects_settings_that_cannot_work(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MaskRefiner(**kwargs)


def test_the_refiners_settings_are_named_never_positional() -> None:
    """th1, th2 and phi are all numbers in [0, 1]: a swapped pair would pass every range check."""
    with pytest.raises(TypeError):
        MaskRefiner(0.9, 0.6, 0.2)
    refiner = MaskRefiner(th1=0.8, th2=0.5, threshold=0.3)
    assert (refiner.th1, refiner.th2, refiner.threshold) == (0.8, 0.5, 0.3)
