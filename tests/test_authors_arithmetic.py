"""The default mask arithmetic is the authors': PIL's bicubic, OpenCV's blur, their uint8 casts.

Checked against PIL and OpenCV themselves, and end to end against ``authors_oracle`` (the
authors' per-step mask written with numpy, PIL and OpenCV) on random attention-like maps.
"""

from __future__ import annotations

import authors_oracle as oracle
import cv2
import numpy as np
import PIL.Image
import pytest
import torch

from instdiffedit.arithmetic import pil_bicubic_resize
from instdiffedit.backbones import StableDiffusion
from instdiffedit.refine import MaskRefiner, blur
from instdiffedit.resizing import binary_mask_to_size
from instdiffedit.tokens import TokenLayout

CASES = 200


@pytest.mark.parametrize(
    ("size", "new_size"),
    [((16, 16), (64, 64)), ((64, 64), (512, 512)), ((64, 64), (16, 16)), ((13, 17), (64, 50)), ((40, 40), (20, 30)), ((7, 9), (7, 30)), ((40, 40), (16, 40))],
)
def test_pil_bicubic_resize_gives_pils_bytes(size: tuple[int, int], new_size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size + new_size))
    images = [rng.integers(0, 256, size, dtype=np.uint8), (rng.random(size) > 0.5).astype(np.uint8) * 255]
    for image in images:
        expected = np.asarray(PIL.Image.fromarray(image).resize(new_size[::-1], PIL.Image.Resampling.BICUBIC))
        ours = pil_bicubic_resize(torch.from_numpy(image)[None], new_size)[0]
        assert np.array_equal(ours.numpy().astype(np.uint8), expected)


@pytest.mark.parametrize(("kernel", "sigma", "passes"), [(5, 0, 1), (5, 0, 2), (5, 1.0, 1), (3, 0, 1), (7, 0, 2), (5, 1.1, 1)])
def test_blur_matches_opencvs_gaussian_blur(kernel: int, sigma: float, passes: int) -> None:
    rng = np.random.default_rng(kernel + passes)
    for shape in [(64, 64), (17, 23)]:
        image = rng.random(shape).astype(np.float32)
        expected = image
        for _ in range(passes):
            expected = cv2.GaussianBlur(expected, (kernel, kernel), sigma)
        ours = blur(torch.from_numpy(image), kernel, sigma, passes).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_the_mask_for_the_inpainting_is_pil_bicubic_then_binarised_at_one_half() -> None:
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.random((64, 64)) > 0.7).float()
    upsampled = np.asarray(PIL.Image.fromarray(mask.numpy().astype(np.uint8) * 255).resize((512, 512), PIL.Image.Resampling.BICUBIC))
    expected = (upsampled.astype(np.float32) / 255 >= 0.5).astype(np.float32)  # as the SD-inpainting pipeline binarises
    assert np.array_equal(binary_mask_to_size(mask, (512, 512), "authors").numpy(), expected)
    assert torch.equal(binary_mask_to_size(mask, (512, 512), "float"), mask.repeat_interleave(8, 0).repeat_interleave(8, 1))


def test_the_encoder_sees_the_image_resized_with_pil_bicubic(tiny) -> None:
    d = StableDiffusion(tiny.base)
    image = PIL.Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    side = d.resolution
    expected = np.asarray(image.resize((side, side), PIL.Image.Resampling.BICUBIC)).astype(np.float32) / 255 * 2 - 1
    assert np.array_equal(d.preprocess(image)[0].permute(1, 2, 0).cpu().numpy(), expected)


@pytest.mark.parametrize("strength", [0.35, 0.5, 0.55, 0.75, 0.95, 1.0])
def test_a_strength_runs_int_steps_times_strength_steps(tiny, strength: float) -> None:
    assert len(StableDiffusion(tiny.base).timesteps(50, strength)) == int(50 * strength)


def test_a_strength_that_runs_no_step_is_refused(tiny) -> None:
    with pytest.raises(ValueError, match="runs no step"):
        StableDiffusion(tiny.base).timesteps(50, 0.01)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _agreement(cases: list[oracle.AttentionCase], arithmetic: str) -> tuple[float, float]:
    """Shares of cases where our word positions equal the authors', and where mask IoU >= 0.95."""
    refiner = MaskRefiner(arithmetic=arithmetic)
    same_positions = good_masks = 0
    for case in cases:
        images = oracle.word_images(case)
        expected_positions = oracle.positions(images)
        expected_mask = oracle.mask(images, expected_positions)
        layout = TokenLayout(words=tuple(f"w{k}" for k in range(len(case.spans))), spans=case.spans, end=case.end)
        maps = refiner.word_maps(torch.from_numpy(case.attention), layout, (64, 64))
        ours = refiner.positions(maps)
        _, binary = refiner(maps, ours)
        same_positions += ours.tolist() == expected_positions
        good_masks += _iou(binary.bool().numpy(), expected_mask) >= 0.95
    return same_positions / len(cases), good_masks / len(cases)


@pytest.mark.parametrize("kind", ["attention_like", "uniform"])
def test_the_default_arithmetic_reproduces_the_authors_masks(kind: str) -> None:
    draw = oracle.attention_like_case if kind == "attention_like" else oracle.uniform_case
    rng = np.random.default_rng(455968)
    cases = [draw(rng) for _ in range(CASES)]
    positions, masks = _agreement(cases, "authors")
    float_positions, float_masks = _agreement(cases, "float")
    print(
        f"\n{kind}, {CASES} cases: same word positions / mask IoU >= 0.95 as the authors' code: "
        f"arithmetic=authors {positions:.1%} / {masks:.1%}; arithmetic=float {float_positions:.1%} / {float_masks:.1%}"
    )
    assert positions >= 0.99
    assert masks >= 0.98
