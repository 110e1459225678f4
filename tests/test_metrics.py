"""Metrics without real weights: exact values on hand-made tensors, corpus metrics on known features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from fakes import ChannelMeans, RecordingDistance

from benchmarks.data.items import EditItem
from benchmarks.metrics.corpus import FID, SFID
from benchmarks.metrics.feature_means import compute_feature_means
from benchmarks.metrics.feature_means import main as feature_means_main
from benchmarks.metrics.functional import (
    changing_rate,
    mask_iou,
    mse,
    psnr,
    ssim_outside,
)
from benchmarks.metrics.imagenet_classes import (
    imagenet_class_index,
    imagenet_class_indices,
)
from benchmarks.metrics.per_item import BackgroundPreservation, ChangingRate, MaskIoU
from benchmarks.metrics.weights import MetricUnavailableError
from instdiffedit.types import EditResult

TENCH, GOLDFISH = "n01440764", "n01443537"  # ImageNet-1k classes 0 and 1


def _image(pixels: np.ndarray) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.asarray(pixels, dtype=np.uint8))


def _constant(colour: tuple[int, int, int], size: tuple[int, int] = (8, 12)) -> PIL.Image.Image:
    return _image(np.broadcast_to(np.array(colour, dtype=np.uint8), (*size, 3)))


# ------------------------------------------------------------------------------------------
# Pure functions
# ------------------------------------------------------------------------------------------


def test_mask_iou_by_hand() -> None:
    predicted = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    truth = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert mask_iou(predicted, truth) == pytest.approx(1 / 3)  # 1 shared pixel of 3 in the union
    assert mask_iou(truth, truth) == 1.0
    assert math.isnan(mask_iou(torch.zeros(2, 2), torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(torch.zeros(2, 2), torch.zeros(3, 3))


def test_changing_rate_by_hand() -> None:
    source = torch.zeros(3, 4, 4)
    mask = torch.zeros(4, 4)
    mask[:2, :2] = 1
    edited = source.clone()
    edited[:, :2, :2] = 0.5  # inside: 4 pixels x 3 channels changed by 0.5 -> mean 0.5
    edited[:, 3, 3] = 0.25  # outside: 1 of 12 pixels changed by 0.25 -> mean 0.25 / 12
    assert changing_rate(source, edited, mask) == pytest.approx(0.5 / (0.25 / 12))  # 24
    edited[0, 3, 2] = 0.75  # one more channel of one pixel outside: (0.75 + 0.75) / 36
    assert changing_rate(source, edited, mask) == pytest.approx(0.5 / (1.5 / 36))  # 12


def test_changing_rate_is_nan_when_undefined() -> None:
    source, edited = torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.5)
    assert math.isnan(changing_rate(source, edited, torch.zeros(4, 4)))  # empty mask
    assert math.isnan(changing_rate(source, edited, torch.ones(4, 4)))  # full mask
    mask = torch.zeros(4, 4)
    mask[0, 0] = 1
    only_inside = source.clone()
    only_inside[:, 0, 0] = 1.0
    assert math.isnan(changing_rate(source, only_inside, mask))  # nothing changed outside
    with pytest.raises(ValueError, match="Mask shape"):
        changing_rate(source, edited, torch.zeros(3, 3))


def test_mse_and_psnr_by_hand() -> None:
    source = torch.zeros(3, 2, 2)
    edited = source.clone()
    edited[:, 0, 0] = 0.1  # three squared errors of 0.01
    edited[0, 1, 1] = 0.3  # one squared error of 0.09
    assert mse(source, edited) == pytest.approx((3 * 0.01 + 0.09) / 12)  # 0.01
    assert psnr(source, edited) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    region = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert mse(source, edited, region) == pytest.approx(0.09 / 3)
    assert psnr(source, edited, region) == pytest.approx(10 * math.log10(1 / 0.03))
    assert psnr(source, edited, region, data_range=255.0) == pytest.approx(10 * math.log10(255.0**2 / 0.03))
    assert math.isnan(mse(source, edited, torch.zeros(2, 2)))
    assert math.isnan(psnr(source, edited, torch.zeros(2, 2)))
    assert mse(source, source) == 0.0 and psnr(source, source) == math.inf


def test_ssim_outside_ignores_the_mask_region() -> None:
    gen = torch.Generator().manual_seed(0)
    source = torch.rand(3, 24, 24, generator=gen)
    mask = torch.zeros(24, 24)
    mask[6:18, 6:18] = 1
    edited = source.clone()
    edited[:, 6:18, 6:18] = torch.rand(3, 12, 12, generator=gen)  # changes inside only
    assert ssim_outside(source, edited, mask) == pytest.approx(1.0, abs=1e-6)
    edited[:, 0:4, :] = 1 - edited[:, 0:4, :]  # now the background changes too
    assert ssim_outside(source, edited, mask) < 0.95
    assert math.isnan(ssim_outside(source, edited, torch.ones(24, 24)))
    assert math.isnan(ssim_outside(source[:, :8, :8], edited[:, :8, :8], mask[:8, :8] * 0))  # window does not fit


# ------------------------------------------------------------------------------------------
# Per-item metric objects
# ------------------------------------------------------------------------------------------


def _item_and_result(gt_mask: torch.Tensor | None = None) -> tuple[EditItem, EditResult]:
    """A 16x16 black input; the edit turns the top-left 8x8 white and one outside pixel to 51/255 = 0.2."""
    source = np.zeros((16, 16, 3), dtype=np.uint8)
    edited = source.copy()
    edited[:8, :8] = 255
    edited[15, 15] = 51
    mask = torch.zeros(16, 16)
    mask[:8, :8] = 1
    item = EditItem(id="x", image=_image(source), target="t", gt_mask=mask if gt_mask is None else gt_mask)
    return item, EditResult(image=_image(edited), mask=mask)


def test_per_item_metrics_by_hand() -> None:
    item, result = _item_and_result()
    assert MaskIoU()(item, result) == {"mask_iou": 100.0}
    # Inside: every value changed by 1; outside: 3 of 192 x 3 values changed by 0.2.
    assert ChangingRate()(item, result) == {"changing_rate": pytest.approx(1.0 / (3 * 0.2 / 576))}  # 960
    values = BackgroundPreservation()(item, result)
    assert set(values) == {"bg_psnr", "bg_ssim", "bg_mse"}
    assert values["bg_mse"] == pytest.approx(3 * 0.2**2 / 576)
    assert values["bg_psnr"] == pytest.approx(10 * math.log10(576 / (3 * 0.04)))
    assert 0 < values["bg_ssim"] < 1


def test_per_item_metrics_without_a_ground_truth_mask_are_nan() -> None:
    item, result = _item_and_result()
    item = EditItem(id=item.id, image=item.image, target=item.target)
    assert math.isnan(ChangingRate()(item, result)["changing_rate"])
    background = BackgroundPreservation(lpips_model=RecordingDistance(0.5))(item, result)
    assert set(background) == {"bg_psnr", "bg_ssim", "bg_mse", "bg_lpips"}
    assert all(math.isnan(v) for v in background.values())


def test_edited_image_of_another_size_is_an_error() -> None:
    item, _ = _item_and_result()
    with pytest.raises(ValueError, match="at the input size"):
        ChangingRate()(item, EditResult(image=_constant((0, 0, 0), (5, 5))))


def test_background_lpips_sees_blanked_images_in_minus_one_to_one() -> None:
    item, result = _item_and_result()
    recorder = RecordingDistance(0.125)
    values = BackgroundPreservation(lpips_model=recorder)(item, result)
    assert values["bg_lpips"] == pytest.approx(12.5)  # x100
    ((edited, source),) = recorder.inputs
    assert edited.shape == source.shape == (1, 3, 16, 16)
    assert torch.all(edited[0, :, :8, :8] == -1) and torch.all(source[0, :, :8, :8] == -1)  # blanked
    assert edited[0, 0, 15, 15].item() == pytest.approx(2 * 0.2 - 1)
    assert source.min().item() == -1 and edited.max().item() <= 1


# ------------------------------------------------------------------------------------------
# ImageNet class names
# ------------------------------------------------------------------------------------------


def test_imagenet_class_names_map_to_indices() -> None:
    assert imagenet_class_index("tench") == 0
    assert imagenet_class_index("tench, Tinca tinca") == 0
    assert imagenet_class_index("Tinca tinca") == 0
    assert imagenet_class_index(TENCH) == 0 and imagenet_class_index("1") == 1
    assert imagenet_class_index("Afghan hound") == 160  # FlexIT's queries name classes like this
    assert imagenet_class_index("afghan hound") == 160
    assert imagenet_class_index("sax") == 776
    with pytest.raises(KeyError, match="ambiguous.*n02012849.*n03126707"):
        imagenet_class_index("crane")
    with pytest.raises(KeyError) as error:
        imagenet_class_indices(["tench", "flying teapot", "Afghan hound", "space whale"])
    assert "'flying teapot'" in str(error.value) and "'space whale'" in str(error.value)


# ------------------------------------------------------------------------------------------
# Corpus metrics on known features
# ------------------------------------------------------------------------------------------


def test_fid_of_a_shifted_set_is_the_squared_shift() -> None:
    colours = [(10, 40, 90), (60, 20, 30), (35, 90, 50), (80, 70, 10), (20, 30, 60)]
    sizes = [(8, 8), (8, 8), (6, 10), (8, 8), (6, 10)]  # mixed sizes batch separately
    shift = np.array([10, 20, 0])
    pairs = [(EditItem(id=str(i), image=_constant(c, s), target="t"), _constant(tuple(np.array(c) + shift), s)) for i, (c, s) in enumerate(zip(colours, sizes))]
    fid = FID(feature=ChannelMeans(), batch_size=2)
    # Same covariance in both sets, so FID = ||mean shift||^2 = 10^2 + 20^2.
    assert fid.compute(pairs) == {"fid": pytest.approx(500.0, abs=1e-2), "fid_items": 5.0}
    assert fid.compute(iter(pairs)) == {"fid": pytest.approx(500.0, abs=1e-2), "fid_items": 5.0}  # resets
    assert math.isnan(fid.compute(pairs[:1])["fid"])


def _train_root(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    for wnid, colours in {TENCH: [(10, 20, 30), (30, 40, 50)], GOLDFISH: [(100, 100, 100)]}.items():
        (root / wnid).mkdir(parents=True)
        for i, colour in enumerate(colours):
            _constant(colour).save(root / wnid / f"{wnid}_{i}.JPEG", format="PNG")  # lossless
    (root / TENCH / "notes.txt").write_text("not an image")
    return root


def test_feature_means_per_class_and_overall(tmp_path: Path) -> None:
    out = tmp_path / "means.pt"
    result = compute_feature_means(_train_root(tmp_path), out, feature=ChannelMeans(), workers=0, progress=False)
    saved = torch.load(out, weights_only=True)
    assert saved["count"] == result["count"] == 3
    assert torch.allclose(saved["mean"], torch.tensor([140 / 3, 160 / 3, 180 / 3], dtype=torch.float64))
    assert torch.allclose(saved["class_means"][0], torch.tensor([20.0, 30.0, 40.0], dtype=torch.float64))
    assert torch.allclose(saved["class_means"][1], torch.tensor([100.0, 100.0, 100.0], dtype=torch.float64))
    assert saved["class_counts"][:3].tolist() == [2, 1, 0] and torch.isnan(saved["class_means"][2]).all()
    assert saved["wnids"][0] == TENCH and saved["meta"]["size"] == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["means.pt", "train"]  # no partial or temp file left


class _FailsAfter(ChannelMeans):
    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return super().forward(images)


def test_feature_means_resume_after_an_interrupt(tmp_path: Path) -> None:
    root, out = _train_root(tmp_path), tmp_path / "means.pt"
    options = dict(workers=0, batch_size=1, checkpoint_every=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        compute_feature_means(root, out, feature=_FailsAfter(2), **options)
    assert not out.exists()
    partial = torch.load(tmp_path / "means.pt.partial", weights_only=True)
    assert partial["done"] == 2
    resumed = _FailsAfter(1)  # only the third image is left
    result = compute_feature_means(root, out, feature=resumed, **options)
    assert resumed.calls == 0 and result["count"] == 3
    assert torch.allclose(result["class_means"][0], torch.tensor([20.0, 30.0, 40.0], dtype=torch.float64))
    assert not (tmp_path / "means.pt.partial").exists()


def test_feature_means_cli_rejects_folders_that_are_not_wordnet_ids(tmp_path: Path, capsys) -> None:
    (tmp_path / "train" / "goldfish").mkdir(parents=True)
    assert feature_means_main(["--train-root", str(tmp_path / "train"), "--out", str(tmp_path / "m.pt")]) == 1
    assert "not ImageNet-1k WordNet ids: goldfish" in capsys.readouterr().err


def test_sfid_and_csfid_on_known_features(tmp_path: Path) -> None:
    means = tmp_path / "means.pt"
    compute_feature_means(_train_root(tmp_path), means, feature=ChannelMeans(), workers=0, progress=False)
    sfid = SFID(means=str(means), feature=ChannelMeans(), batch_size=1)
    pairs = [
        (EditItem(id="a", image=_constant((0, 0, 0)), target="a tench", meta={"target_class": "tench"}), _constant((20, 30, 44), (300, 200))),
        (EditItem(id="b", image=_constant((0, 0, 0)), target="a goldfish", meta={"target_class": GOLDFISH}), _constant((100, 103, 100))),
    ]
    values = sfid.compute(pairs)
    # Edited mean (60, 66.5, 72) vs the train mean (140/3, 160/3, 60).
    assert values["sfid"] == pytest.approx((60 - 140 / 3) ** 2 + (66.5 - 160 / 3) ** 2 + 12**2)
    # Tench: (20, 30, 44) vs (20, 30, 40) -> 16; goldfish: (100, 103, 100) vs (100, 100, 100) -> 9.
    assert values["csfid"] == pytest.approx((16 + 9) / 2)
    assert (values["sfid_items"], values["csfid_classes"]) == (2.0, 2.0)

    no_class = EditItem(id="c", image=_constant((0, 0, 0)), target="?")
    values = sfid.compute(pairs + [(no_class, _constant((50, 50, 50)))])
    assert math.isnan(values["csfid"]) and values["sfid_items"] == 3.0


def test_sfid_needs_a_matching_means_file(tmp_path: Path) -> None:
    with pytest.raises(MetricUnavailableError) as error:
        SFID(feature=ChannelMeans())
    message = str(error.value)
    assert "metrics.corpus.sfid.means=/path/to/means.pt" in message and "~metrics.corpus.sfid" in message
    assert "python -m benchmarks.metrics.feature_means" in message and message.count(". ") == 0
    with pytest.raises(MetricUnavailableError, match="is not a file"):
        SFID(means=str(tmp_path / "missing.pt"), feature=ChannelMeans())

    class OtherFeatures(ChannelMeans):
        pass

    means = tmp_path / "means.pt"
    compute_feature_means(_train_root(tmp_path), means, feature=ChannelMeans(), workers=0, progress=False)
    with pytest.raises(ValueError, match="recompute the means"):
        SFID(means=str(means), feature=OtherFeatures())


# ------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------

CONF = Path(__file__).resolve().parents[1] / "conf"


def _compose(metrics: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"metrics={metrics}", "logger=none"])


def test_default_metrics_need_no_weights() -> None:
    from hydra.utils import instantiate

    metrics = instantiate(_compose("default").metrics)
    assert set(metrics) == {
        "mask_iou",
        "changed_region",
        "mask_boundary_f",
        "changing_rate",
        "background",
        "edit_success",
    }  # edit success: the shipped toy classifier
    item, result = _item_and_result()
    row = {k: v for metric in metrics.values() for k, v in metric(item, result).items()}
    changed = {"changed_area", "changed_iou", "changed_precision", "changed_recall", "change_outside", "mask_boundary_f"}
    assert set(row) == {"mask_iou", "changing_rate", "bg_psnr", "bg_ssim", "bg_mse", *changed}  # no edit success outside the toy split


def test_paper_metrics_config_names_every_metric() -> None:
    import importlib

    from omegaconf import OmegaConf

    metrics = OmegaConf.to_container(_compose("paper").metrics, resolve=True)
    corpus = metrics.pop("corpus")
    assert set(metrics) == {"mask_iou", "changed_region", "mask_boundary_f", "changing_rate", "background", "lpips", "clip_score", "accuracy", "edit_success"}
    assert set(corpus) == {"fid", "sfid"}
    for node in [*metrics.values(), *corpus.values()]:
        module, _, name = node["_target_"].rpartition(".")
        assert hasattr(importlib.import_module(module), name)
    for name in ("background", "lpips", "clip_score", "accuracy"):
        assert metrics[name]["weights"] is None
    assert corpus["fid"]["weights"] is None and corpus["sfid"]["means"] is None
