"""PIE-Bench's metrics as its evaluation code computes them, on small injected backbones."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import lpips
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from fakes import RecordingDistance, tiny_clip, tiny_dino
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from pie_layout import ITEMS, write_pie_bench
from torchmetrics.functional import mean_squared_error
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from benchmarks.data.items import EditItem
from benchmarks.data.pie_bench import PieBenchSplit, with_border
from benchmarks.metrics.functional import image_to_tensor
from benchmarks.metrics.per_item import BackgroundPreservation
from benchmarks.metrics.pie_bench import (
    PieBackground,
    PieCLIPSimilarity,
    StructureDistance,
)
from benchmarks.metrics.weights import MetricUnavailableError, load_lpips
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, run
from instdiffedit import InstDiffEdit
from instdiffedit.types import EditResult

CONF = Path(__file__).resolve().parents[1] / "conf"


def _random_image(height: int, width: int, seed: int) -> PIL.Image.Image:
    return PIL.Image.fromarray((np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8))


def _item(mask: torch.Tensor | None = None, **meta: str) -> EditItem:
    return EditItem("x", _random_image(32, 40, 0), target="a dog", gt_mask=mask, meta=meta)


def _box(height: int = 32, width: int = 40) -> torch.Tensor:
    mask = torch.zeros(height, width)
    mask[8:20, 10:30] = 1
    return mask


# ------------------------------------------------------------------------------------------
# Structure distance
# ------------------------------------------------------------------------------------------


def _authors_self_similarity(model: torch.nn.Module, layer: int, pixels: torch.Tensor) -> torch.Tensor:
    """The authors' route: qkv output -> (patches, 3, heads, dim/heads) -> keys -> heads side by side -> cosine."""
    captured = []
    handle = model.blocks[layer].attn.qkv.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        model(pixels)
    handle.remove()
    qkv = captured[0]
    heads = model.blocks[layer].attn.num_heads
    tokens, dim = qkv.shape[1], qkv.shape[2] // 3
    keys = qkv.reshape(tokens, 3, heads, dim // heads).permute(1, 2, 0, 3)[1]
    concatenated = keys.transpose(0, 1).reshape(tokens, dim)
    norms = concatenated.norm(dim=1, keepdim=True)
    return (concatenated @ concatenated.T) / torch.clamp(norms @ norms.T, min=1e-8)


def test_structure_distance_is_the_mse_of_key_self_similarities_as_the_authors_compute_it() -> None:
    model = tiny_dino()
    metric = StructureDistance(model=model, layer=1, size=64)
    source, edited = _random_image(64, 64, 1), _random_image(64, 64, 2)
    expected = F.mse_loss(_authors_self_similarity(model, 1, metric.preprocess(edited)), _authors_self_similarity(model, 1, metric.preprocess(source)))
    value = metric(EditItem("x", source, "t"), EditResult(image=edited))["structure_distance"]
    assert value == pytest.approx(1e3 * float(expected), rel=1e-5) and value > 0
    assert metric(EditItem("x", source, "t"), EditResult(image=source))["structure_distance"] == 0.0


def test_dino_sees_pixels_in_0_255_as_the_authors_feed_it_resized_on_the_short_side() -> None:
    white = PIL.Image.new("RGB", (100, 50), (255, 255, 255))
    authors = StructureDistance(model=tiny_dino(), layer=1, size=64, max_size=96)
    pixels = authors.preprocess(white)
    assert pixels.shape == (1, 3, 48, 96)  # short side to 64 would make the long 128 > 96: capped
    assert pixels[0, 0].mean().item() == pytest.approx((255 - 0.485) / 0.229, rel=1e-5)
    trained = StructureDistance(model=tiny_dino(), layer=1, size=64, max_size=96, pixel_range=1.0)
    assert trained.preprocess(white)[0, 0].mean().item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    source, edited = EditItem("x", _random_image(64, 64, 1), "t"), EditResult(image=_random_image(64, 64, 2))
    assert authors(source, edited) != trained(source, edited)


def test_the_resized_image_is_cut_to_whole_patches_as_dinos_patch_convolution_reads_it() -> None:
    metric = StructureDistance(model=tiny_dino(), layer=1, size=60)  # 16-pixel patches
    pixels = metric.preprocess(_random_image(50, 100, 3))  # resized to 60 x 120
    assert pixels.shape == (1, 3, 48, 112)
    item, result = EditItem("x", _random_image(50, 100, 3), "t"), EditResult(image=_random_image(50, 100, 4))
    assert metric(item, result)["structure_distance"] > 0


def test_structure_distance_without_weights_fails_in_one_sentence(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        StructureDistance()
    except MetricUnavailableError as error:
        message = str(error)
        for needle in ("vit_base_patch8_224.dino", "metrics.structure.weights=", "~metrics.structure"):
            assert needle in message, message
        assert "\n" not in message and message.endswith(".")
    else:
        pytest.skip("the DINO weights are in the local Hugging Face cache")


# ------------------------------------------------------------------------------------------
# Background preservation
# ------------------------------------------------------------------------------------------


def _framed_expectations(item: EditItem, edited: PIL.Image.Image, border: bool) -> dict[str, float]:
    """torchmetrics' PSNR, MSE and SSIM on both images with the (framed) edit region set to 0, as the authors call them."""
    mask = with_border(item.gt_mask) if border else item.gt_mask
    keep = 1 - mask
    a, b = (image_to_tensor(image) * keep for image in (item.image, edited))
    return {
        "pie_bg_psnr": float(peak_signal_noise_ratio(b[None], a[None], data_range=1.0)),
        "pie_bg_mse": 1e4 * float(mean_squared_error(b.contiguous(), a.contiguous())),
        "pie_bg_ssim": 1e2 * float(structural_similarity_index_measure(b[None], a[None], data_range=1.0)),
    }


@pytest.mark.parametrize("border", [True, False])
def test_background_metrics_compare_the_blanked_images_over_the_whole_image(border: bool) -> None:
    item, edited = _item(_box()), _random_image(32, 40, 5)
    values = PieBackground(lpips=False, border=border)(item, EditResult(image=edited))
    expected = _framed_expectations(item, edited, border)
    assert values == {key: pytest.approx(value, rel=1e-4) for key, value in expected.items()}


def test_pie_mse_is_ours_scaled_by_the_share_of_pixels_outside_the_mask() -> None:
    item, result = _item(_box()), EditResult(image=_random_image(32, 40, 5))
    ours = BackgroundPreservation()(item, result)["bg_mse"]
    theirs = PieBackground(lpips=False, border=False)(item, result)["pie_bg_mse"]
    outside = float((1 - _box()).mean())
    assert theirs == pytest.approx(1e4 * ours * outside, rel=1e-6)


def test_background_lpips_gets_the_blanked_images_in_minus_one_to_one() -> None:
    recorder = RecordingDistance(0.05)
    values = PieBackground(lpips_model=recorder, border=False)(_item(_box()), EditResult(image=_random_image(32, 40, 5)))
    assert values["pie_bg_lpips"] == pytest.approx(50.0)
    ((a, b),) = recorder.inputs
    inside = _box().bool()
    assert torch.all(a[0][:, inside] == -1) and torch.all(b[0][:, inside] == -1)
    assert a.min() >= -1 and a.max() <= 1 and not torch.equal(a, b)


def test_background_metrics_are_undefined_without_a_mask_or_an_outside() -> None:
    metric = PieBackground(lpips=False)
    result = EditResult(image=_random_image(32, 40, 5))
    assert all(math.isnan(v) for v in metric(_item(None), result).values())
    assert all(math.isnan(v) for v in metric(_item(torch.ones(32, 40)), result).values())


def test_squeezenet_lpips_loads_its_trunk_from_a_local_file(tmp_path: Path) -> None:
    from torchvision.models import squeezenet1_1

    torch.manual_seed(0)
    features = squeezenet1_1().features
    path = tmp_path / "squeezenet1_1-b8a52dc0.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = load_lpips(str(path), net="squeeze")
    assert torch.equal(getattr(model.net.slice1, "0").weight, features[0].weight)
    assert torch.equal(getattr(model.net.slice7, "12").expand3x3.bias, features[12].expand3x3.bias)


def test_background_lpips_without_weights_fails_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(MetricUnavailableError) as error:
        PieBackground(weights=str(tmp_path / "missing.pth"))
    message = str(error.value)
    for needle in ("SqueezeNet", "is not a file", "metrics.pie_background.weights=/path/to/squeezenet1_1-b8a52dc0.pth", "metrics.pie_background.lpips=false"):
        assert needle in message, message


# ------------------------------------------------------------------------------------------
# CLIP similarity
# ------------------------------------------------------------------------------------------


def test_clip_similarity_scores_the_whole_edit_and_its_edited_region_with_the_edit_prompt(monkeypatch) -> None:
    model, processor = tiny_clip()
    metric = PieCLIPSimilarity(model=model, processor=processor, border=False)
    calls = []
    monkeypatch.setattr(metric.clip, "score", lambda image, text: calls.append((np.asarray(image), text)) or 0.25)
    edited = _random_image(32, 40, 5)
    values = metric(_item(_box(), target_prompt="a dog sitting on a chair"), EditResult(image=edited))
    assert values == {"clip_whole": 25.0, "clip_edited": 25.0}
    (whole, text), (region, region_text) = calls
    assert text == region_text == "a dog sitting on a chair"
    inside = _box().bool().numpy()
    assert np.array_equal(whole, np.asarray(edited))
    assert np.array_equal(region[inside], np.asarray(edited)[inside]) and not region[~inside].any()
    calls.clear()
    assert math.isnan(metric(_item(None), EditResult(image=edited))["clip_edited"])
    assert calls[0][1] == "a dog"  # without a full edit prompt: the target text


def test_clip_similarity_with_a_real_clip_model_is_a_score_out_of_100() -> None:
    model, processor = tiny_clip()
    values = PieCLIPSimilarity(model=model, processor=processor)(_item(_box()), EditResult(image=_random_image(32, 40, 5)))
    assert all(0 <= v <= 100 for v in values.values())


def test_clip_similarity_without_weights_fails_in_one_sentence(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        PieCLIPSimilarity()
    except MetricUnavailableError as error:
        assert "metrics.pie_clip.weights=" in str(error) and "~metrics.pie_clip" in str(error)
    else:
        pytest.skip("the CLIP weights are in the local Hugging Face cache")


# ------------------------------------------------------------------------------------------
# Config and a whole run
# ------------------------------------------------------------------------------------------


def test_the_pie_bench_metric_config_repeats_the_classes_defaults() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["metrics=pie_bench"])
    assert {"mask_iou", "changing_rate", "background"} <= set(cfg.metrics)  # ours, beside theirs
    for name in ("structure", "pie_background", "pie_clip"):
        node = cfg.metrics[name]
        defaults = inspect.signature(get_class(node._target_)).parameters
        for key, value in node.items():
            if key not in ("_target_", "device"):
                assert value == defaults[key].default, (name, key)


def test_a_pie_bench_run_fills_every_pie_metric_column(tiny, tmp_path: Path) -> None:
    split = PieBenchSplit(str(write_pie_bench(tmp_path / "PIE")))
    model, processor = tiny_clip()
    metrics = {
        "structure": StructureDistance(model=tiny_dino(), layer=1, size=64),
        "pie_background": PieBackground(lpips_model=lpips.LPIPS(net="squeeze", pnet_rand=True, verbose=False)),
        "pie_clip": PieCLIPSimilarity(model=model, processor=processor),
    }
    editor = InstDiffEdit(tiny.base, tiny.inpaint, num_inference_steps=10, inpaint_steps=4)
    table = ResultsTable(tmp_path / "results.jsonl")
    run(editor, split, table, RunSpec(method="instdiffedit", config_id="c", master_seed=0, batch_size=3), metrics=metrics)
    rows = table.frame().set_index("item_id")
    assert (rows["status"] == "ok").all()
    columns = ["structure_distance", "pie_bg_psnr", "pie_bg_mse", "pie_bg_ssim", "pie_bg_lpips", "clip_whole", "clip_edited"]
    local = [i for i in ITEMS if i != "911000000000"]
    assert np.isfinite(rows.loc[local, columns].to_numpy(dtype=float)).all()
    # The style item's mask is the whole image: nothing outside it to preserve.
    assert rows.loc["911000000000", "pie_bg_psnr"] != rows.loc["911000000000", "pie_bg_psnr"]
    assert np.isfinite(rows.loc["911000000000", ["structure_distance", "clip_whole", "clip_edited"]].to_numpy(dtype=float)).all()
