"""Golden results on SD 1.x: each method on the tiny SD model with fixed settings and seeds gives
these numbers (diffusers' ``expected_slice`` habit). They pin every method's mask and image so
that a refactoring that should change nothing (such as the backbone layer) provably changed
nothing: images within 1e-3 (in [0, 1]), masks bit for bit, the same UNet evaluations.

The cases live in ``tests/sd_goldens.py``; ``python tests/sd_goldens.py`` prints these values
(written once, before the refactoring; never regenerate them to make a change pass).
"""

from __future__ import annotations

import numpy as np
import pytest
import sd_goldens

import benchmarks.methods

EXPECTED = {
    "instdiffedit": {
        "image": [0.4235, 0.3412, 0.3843, 0.4235, 0.2196, 0.2745, 0.549, 0.349, 0.5333, 0.4118, 0.4, 0.3804, 0.4549, 0.4627, 0.4, 0.4784, 0.5098, 0.4745],
        "mask": ["11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111"],
        "mask_sum": 6289,
        "soft": [0.4858, 0.4873, 0.5038, 0.6163, 0.5617, 0.3729, 0.386, 0.3824],
        "history": [1015, 999, 1002, 1004, 1009],
        "denoiser_evals": 40,
    },
    "instdiffedit, latent blend": {
        "image": [
            0.3569,
            0.4196,
            0.3412,
            0.4392,
            0.3294,
            0.2667,
            0.5176,
            0.4039,
            0.4824,
            0.3686,
            0.3882,
            0.3961,
            0.3922,
            0.4353,
            0.4196,
            0.4353,
            0.4745,
            0.4706,
        ],
        "mask": ["11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111"],
        "mask_sum": 6289,
        "soft": [0.4858, 0.4873, 0.5038, 0.6163, 0.5617, 0.3729, 0.386, 0.3824],
        "history": [1015, 999, 1002, 1004, 1009],
        "denoiser_evals": 38,
    },
    "instdiffedit, phi 0.6": {
        "image": [
            0.4275,
            0.3412,
            0.3843,
            0.4549,
            0.2314,
            0.298,
            0.5804,
            0.3765,
            0.5608,
            0.4118,
            0.4039,
            0.3843,
            0.4588,
            0.4706,
            0.4039,
            0.4784,
            0.5098,
            0.4745,
        ],
        "mask": ["11001000", "11001101", "10100010", "10000011", "00011000", "10000000", "10000000", "11000100"],
        "mask_sum": 1660,
        "soft": [0.3848, 0.4877, 0.5814, 0.6577, 0.5984, 0.4204, 0.3486, 0.4132],
        "history": [384, 309, 290, 278, 290],
        "denoiser_evals": 40,
    },
    "instdiffedit, float, t-1": {
        "image": [0.4235, 0.3451, 0.3843, 0.4235, 0.2196, 0.2745, 0.5451, 0.349, 0.5333, 0.4118, 0.4, 0.3804, 0.4549, 0.4627, 0.4, 0.4784, 0.5098, 0.4745],
        "mask": ["11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111"],
        "mask_sum": 6289,
        "soft": [0.5087, 0.4968, 0.5109, 0.6036, 0.5374, 0.3906, 0.3864, 0.3651],
        "history": [1012, 1000, 1004, 1007, 1009],
        "denoiser_evals": 40,
    },
    "no_mask": {
        "image": [0.7294, 0.8235, 0.6118, 0.7373, 0.6, 0.6235, 0.6588, 0.5333, 0.6157, 0.6941, 0.6431, 0.5882, 0.6078, 0.5843, 0.5255, 0.5529, 0.5412, 0.4784],
        "mask": ["11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111", "11111111"],
        "mask_sum": 6236,
        "soft": [0.4732, 0.4739, 0.4907, 0.6051, 0.5533, 0.3651, 0.3676, 0.3585],
        "history": [1015, 1000, 1001, 1001, 1001],
        "denoiser_evals": 30,
    },
    "diffedit": {
        "image": [
            0.5137,
            0.6078,
            0.6627,
            0.4863,
            0.4824,
            0.498,
            0.4588,
            0.3569,
            0.3725,
            0.7412,
            0.7373,
            0.5961,
            0.7176,
            0.7961,
            0.6431,
            0.5255,
            0.5882,
            0.5059,
        ],
        "mask": ["00000001", "01111111", "01111111", "01111111", "01111111", "01111111", "01111111", "01111111"],
        "mask_sum": 5091,
        "soft": [0.2684, 0.3568, 0.4475, 0.5893, 0.4784, 0.4982, 0.4731, 0.3861],
        "history": None,
        "denoiser_evals": 50,
    },
    "diffedit, latent blend": {
        "image": [
            0.4078,
            0.7216,
            0.7765,
            0.4471,
            0.5176,
            0.5608,
            0.4314,
            0.3843,
            0.4627,
            0.4863,
            0.4863,
            0.4941,
            0.4902,
            0.4902,
            0.4941,
            0.498,
            0.4941,
            0.4902,
        ],
        "mask": ["00000001", "01111111", "01111111", "01111111", "01111111", "01111111", "01111111", "01111111"],
        "mask_sum": 5091,
        "soft": [0.2684, 0.3568, 0.4475, 0.5893, 0.4784, 0.4982, 0.4731, 0.3861],
        "history": None,
        "denoiser_evals": 48,
    },
    "sdedit": {
        "image": [0.7294, 0.8235, 0.6118, 0.7373, 0.6, 0.6235, 0.6588, 0.5333, 0.6157, 0.6941, 0.6431, 0.5882, 0.6078, 0.5843, 0.5255, 0.5529, 0.5412, 0.4784],
        "mask": None,
        "mask_sum": None,
        "soft": None,
        "history": None,
        "denoiser_evals": 10,
    },
    "oracle_inpaint": {
        "image": [0.8588, 0.9843, 0.8667, 0.7176, 0.749, 0.6863, 0.5569, 0.5843, 0.6275, 0.7059, 0.549, 0.5608, 0.651, 0.5725, 0.5255, 0.5451, 0.5412, 0.4745],
        "mask": ["00000000", "00000000", "00000111", "00001111", "00001111", "00001111", "00000000", "00000000"],
        "mask_sum": 1579,
        "soft": None,
        "history": None,
        "denoiser_evals": 10,
    },
    "oracle_inpaint, latent blend": {
        "image": [0.9255, 0.9725, 0.5608, 0.8118, 0.6, 0.6314, 0.4824, 0.3529, 0.6157, 0.4745, 0.4745, 0.4863, 0.4745, 0.4784, 0.4863, 0.4902, 0.4863, 0.4863],
        "mask": ["00000000", "00000000", "00000111", "00001111", "00001111", "00001111", "00000000", "00000000"],
        "mask_sum": 1579,
        "soft": None,
        "history": None,
        "denoiser_evals": 8,
    },
    "diffedit_ddim": {
        "image": [
            0.5608,
            0.6118,
            0.6314,
            0.9176,
            0.9647,
            0.6078,
            0.9529,
            0.9804,
            0.9137,
            0.5451,
            0.5412,
            0.5176,
            0.5882,
            0.5608,
            0.5529,
            0.5373,
            0.4784,
            0.4706,
        ],
        "mask": ["00000000", "00000000", "00000011", "01000000", "00000000", "00110111", "00000000", "00000000"],
        "mask_sum": 606,
        "soft": None,
        "history": None,
        "denoiser_evals": 23,
    },
    "ledits_pp": {
        "image": [0.3608, 0.7412, 0.4471, 0.4, 0.5922, 0.4627, 0.5961, 0.7059, 0.5451, 0.5255, 0.5098, 0.4706, 0.5255, 0.5176, 0.4627, 0.5412, 0.5255, 0.4627],
        "mask": ["00000000", "00000000", "00000000", "00000000", "00000000", "00000000", "00000000", "00000000"],
        "mask_sum": 91,
        "soft": [0.0, 0.0, 0.0, 0.07, 0.119, 0.1, 0.121, 0.0],
        "history": None,
        "denoiser_evals": 40,
    },
}


@pytest.mark.parametrize("case", list(sd_goldens.CASES))
def test_each_method_gives_its_golden_mask_image_and_unet_evaluations(tiny, case: str) -> None:
    result = sd_goldens.edit(tiny, case)
    expected = EXPECTED[case]
    got = sd_goldens.summary(result)
    assert got["denoiser_evals"] == expected["denoiser_evals"]
    assert got["mask"] == expected["mask"] and got["mask_sum"] == expected["mask_sum"]
    assert got["history"] == expected["history"]
    np.testing.assert_allclose(sd_goldens.image_slice(result), expected["image"], atol=1e-3)
    if expected["soft"] is None:
        assert got["soft"] is None
    else:
        np.testing.assert_allclose(got["soft"], expected["soft"], atol=1e-3)


def test_the_cases_cover_every_method_that_runs_on_sd() -> None:
    """Compositions are left out: tests/test_compose.py pins them to the methods they equal."""
    from test_cli import SD_METHODS

    covered = {case.split(",")[0] for case in sd_goldens.CASES}
    compositions = {m.name for m in benchmarks.methods.all_methods() if m.role == "composition"}
    assert covered == set(SD_METHODS) - compositions
