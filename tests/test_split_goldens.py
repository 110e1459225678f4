"""Golden rows of every split: two items of each, edited with fixed seeds and measured by the
split's metric set through the runner, give these numbers (diffusers' ``expected_slice`` habit,
to 1e-3). They pin the splits' loading, every metric and the runner's rows and summary, so that
a restructuring that should change nothing provably changed nothing.

The cases live in ``tests/split_goldens.py``; ``INSTDIFFEDIT_LISTS=... python tests/split_goldens.py``
prints these values (written once, before the restructuring; never regenerate them to make a
change pass). Editing-Mask, ImageNet and Imagen need the authors' lists in the folder that
``INSTDIFFEDIT_LISTS`` names (``tests/authors_lists.py``) and are skipped without them.
"""

from __future__ import annotations

from pathlib import Path

import authors_lists
import pytest
import split_goldens

EXPECTED: dict[str, dict] = {
    "synthetic": {
        "items": {
            "synthetic-00000": {
                "batch_size": 2,
                "bg_mse": 0.0343661,
                "bg_psnr": 14.6387,
                "bg_ssim": 0.24164,
                "changing_rate": 2.18678,
                "mask_iou": 15.2522,
                "seed": 8294060112035846367,
                "denoiser_evals": 40,
            },
            "synthetic-00001": {
                "batch_size": 2,
                "bg_mse": 0.0269044,
                "bg_psnr": 15.7018,
                "bg_ssim": 0.181383,
                "changing_rate": 2.83452,
                "mask_iou": 9.29598,
                "seed": 6736236503496199283,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "bg_mse": 0.0306353,
            "bg_psnr": 15.1702,
            "bg_ssim": 0.211512,
            "changing_rate": 2.51065,
            "failed": 0.0,
            "flagged": 0.0,
            "items": 2.0,
            "mask_iou": 12.2741,
            "denoiser_evals": 40.0,
        },
    },
    "toy_shapes": {
        "items": {
            "toy-00000": {
                "batch_size": 2,
                "bg_mse": 0.0919872,
                "bg_psnr": 10.3627,
                "bg_ssim": 0.097665,
                "changing_rate": 1.24074,
                "edit_success": 0.0,
                "mask_iou": 4.3202,
                "seed": 9162009897338824447,
                "denoiser_evals": 40,
            },
            "toy-00001": {
                "batch_size": 2,
                "bg_mse": 0.212258,
                "bg_psnr": 6.73137,
                "bg_ssim": 0.0970563,
                "changing_rate": 0.917589,
                "edit_success": 0.0,
                "mask_iou": 3.64413,
                "seed": 8905484955775878174,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "bg_mse": 0.152122,
            "bg_psnr": 8.54705,
            "bg_ssim": 0.0973607,
            "changing_rate": 1.07917,
            "edit_success": 0.0,
            "failed": 0.0,
            "flagged": 0.0,
            "items": 2.0,
            "mask_iou": 3.98217,
            "denoiser_evals": 40.0,
        },
    },
    "editing_mask": {
        "items": {
            "1": {
                "accuracy": "nan",
                "batch_size": 2,
                "bg_lpips": 7.66159,
                "bg_mse": 0.108323,
                "bg_psnr": 9.65279,
                "bg_ssim": 0.261374,
                "changing_rate": 0.967237,
                "clip_score": 0.0,
                "lpips": 14.2548,
                "mask_iou": 25.677,
                "seed": 8194089093411144673,
                "unedited": "nan",
                "denoiser_evals": 40,
            },
            "ILSVRC2012_val_00028602": {
                "accuracy": 0.0,
                "batch_size": 2,
                "bg_lpips": 6.82971,
                "bg_mse": 0.105361,
                "bg_psnr": 9.77319,
                "bg_ssim": 0.268341,
                "changing_rate": 1.03324,
                "clip_score": 0.0,
                "lpips": 14.1139,
                "mask_iou": 25.0907,
                "seed": 47701390782997407,
                "unedited": 0.0,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "accuracy": 0.0,
            "bg_lpips": 7.24565,
            "bg_mse": 0.106842,
            "bg_psnr": 9.71299,
            "bg_ssim": 0.264857,
            "changing_rate": 1.00024,
            "clip_score": 0.0,
            "failed": 0.0,
            "flagged": 0.0,
            "items": 2.0,
            "lpips": 14.1844,
            "mask_iou": 25.3839,
            "unedited": 0.0,
            "denoiser_evals": 40.0,
        },
    },
    "imagenet": {
        "items": {
            "ILSVRC2012_val_00028602": {
                "accuracy": 0.0,
                "batch_size": 2,
                "bg_lpips": "nan",
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "clip_score": 0.0,
                "lpips": 13.0467,
                "mask_iou": "nan",
                "seed": 47701390782997407,
                "unedited": 0.0,
                "denoiser_evals": 40,
            },
            "ILSVRC2012_val_00043263": {
                "accuracy": 0.0,
                "batch_size": 2,
                "bg_lpips": "nan",
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "clip_score": 0.0885908,
                "lpips": 12.9823,
                "mask_iou": "nan",
                "seed": 5451686356182684613,
                "unedited": 0.0,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "accuracy": 0.0,
            "bg_lpips": "nan",
            "bg_mse": "nan",
            "bg_psnr": "nan",
            "bg_ssim": "nan",
            "changing_rate": "nan",
            "clip_score": 0.0442954,
            "csfid": 432.133,
            "csfid_classes": 2.0,
            "failed": 0.0,
            "fid": 455.393,
            "fid_items": 2.0,
            "flagged": 0.0,
            "items": 2.0,
            "lpips": 13.0145,
            "mask_iou": "nan",
            "sfid": 425.871,
            "sfid_items": 2.0,
            "unedited": 0.0,
            "denoiser_evals": 40.0,
        },
    },
    "imagen": {
        "items": {
            "1": {
                "accuracy": "nan",
                "batch_size": 2,
                "bg_lpips": "nan",
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "clip_score": 0.0,
                "lpips": 12.6118,
                "mask_iou": "nan",
                "seed": 8194089093411144673,
                "unedited": "nan",
                "denoiser_evals": 40,
            },
            "181": {
                "accuracy": "nan",
                "batch_size": 2,
                "bg_lpips": "nan",
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "clip_score": 0.11932,
                "lpips": 12.2097,
                "mask_iou": "nan",
                "seed": 6096680063488670390,
                "unedited": "nan",
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "accuracy": "nan",
            "bg_lpips": "nan",
            "bg_mse": "nan",
            "bg_psnr": "nan",
            "bg_ssim": "nan",
            "changing_rate": "nan",
            "clip_score": 0.0596598,
            "failed": 0.0,
            "fid": 360.621,
            "fid_items": 2.0,
            "flagged": 0.0,
            "items": 2.0,
            "lpips": 12.4108,
            "mask_iou": "nan",
            "unedited": "nan",
            "denoiser_evals": 40.0,
        },
    },
    "pie_bench": {
        "items": {
            "000000000000": {
                "batch_size": 2,
                "bg_mse": 0.107592,
                "bg_psnr": 9.68222,
                "bg_ssim": 0.428694,
                "changing_rate": 0.543579,
                "clip_edited": 0.0,
                "clip_whole": 0.0,
                "mask_iou": 44.6469,
                "pie_bg_lpips": 108.144,
                "pie_bg_mse": 550.399,
                "pie_bg_psnr": 12.5932,
                "pie_bg_ssim": 49.6576,
                "seed": 7006917352694984986,
                "structure_distance": 2.24408,
                "denoiser_evals": 40,
            },
            "111000000000": {
                "batch_size": 2,
                "bg_mse": 0.107584,
                "bg_psnr": 9.68254,
                "bg_ssim": 0.283385,
                "changing_rate": 0.550778,
                "clip_edited": 0.0,
                "clip_whole": 0.0,
                "mask_iou": 27.0145,
                "pie_bg_lpips": 146.575,
                "pie_bg_mse": 715.23,
                "pie_bg_psnr": 11.4555,
                "pie_bg_ssim": 36.4308,
                "seed": 2957827095953471183,
                "structure_distance": 2.5236,
                "denoiser_evals": 40,
            },
            "911000000000": {
                "batch_size": 1,
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "clip_edited": 0.0,
                "clip_whole": 0.0,
                "mask_iou": 96.9238,
                "pie_bg_lpips": "nan",
                "pie_bg_mse": "nan",
                "pie_bg_psnr": "nan",
                "pie_bg_ssim": "nan",
                "seed": 6761364812416968390,
                "structure_distance": 2.22759,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "bg_mse": 0.107588,
            "bg_psnr": 9.68238,
            "bg_ssim": 0.35604,
            "changing_rate": 0.547178,
            "clip_edited": 0.0,
            "clip_whole": 0.0,
            "failed": 0.0,
            "flagged": 0.0,
            "items": 3.0,
            "mask_iou": 56.1951,
            "pie_bg_lpips": 127.36,
            "pie_bg_mse": 632.815,
            "pie_bg_psnr": 12.0244,
            "pie_bg_ssim": 43.0442,
            "structure_distance": 2.33176,
            "denoiser_evals": 40.0,
        },
    },
    "folder": {
        "items": {
            "cat": {
                "batch_size": 2,
                "bg_mse": 0.101456,
                "bg_psnr": 9.93721,
                "bg_ssim": 0.238358,
                "changing_rate": 1.00901,
                "mask_iou": 21.1193,
                "seed": 3437477355734223227,
                "denoiser_evals": 40,
            },
            "dog": {
                "batch_size": 2,
                "bg_mse": "nan",
                "bg_psnr": "nan",
                "bg_ssim": "nan",
                "changing_rate": "nan",
                "mask_iou": "nan",
                "seed": 285898313855339597,
                "denoiser_evals": 40,
            },
        },
        "summary": {
            "bg_mse": 0.101456,
            "bg_psnr": 9.93721,
            "bg_ssim": 0.238358,
            "changing_rate": 1.00901,
            "failed": 0.0,
            "flagged": 0.0,
            "items": 2.0,
            "mask_iou": 21.1193,
            "denoiser_evals": 40.0,
        },
    },
}


@pytest.mark.parametrize("split", list(split_goldens.SPLITS))
def test_each_split_gives_its_golden_rows_and_summary(tiny, split: str, tmp_path: Path) -> None:
    if split in split_goldens.NEEDS_LISTS and (why := authors_lists.missing()) is not None:
        pytest.skip(why)
    got = split_goldens.rows(tiny, split, tmp_path)
    expected = EXPECTED[split]
    assert got["items"].keys() == expected["items"].keys()
    for item_id, values in expected["items"].items():
        _assert_numbers(got["items"][item_id], values, f"{split} item {item_id}")
    _assert_numbers(got["summary"], expected["summary"], f"{split} summary")


def _assert_numbers(got: dict, expected: dict, where: str) -> None:
    assert got.keys() == expected.keys(), where
    for column, value in expected.items():
        if isinstance(value, str):  # nan, inf
            assert got[column] == value, f"{where}: {column}"
        else:
            assert got[column] == pytest.approx(value, rel=1e-3, abs=1e-3), f"{where}: {column}"


def test_the_cases_cover_every_split() -> None:
    configured = {p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "dataset").glob("*.yaml")}
    assert set(split_goldens.SPLITS) == configured
