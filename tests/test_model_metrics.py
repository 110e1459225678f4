"""Model-backed metrics: plumbing with small random models, and the one-sentence failure without weights."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from fakes import RecordingDistance
from fakes import tiny_clip as tiny_clip_model
from torch import nn

from benchmarks.data.items import EditItem
from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.metrics.corpus import FID, SFID
from benchmarks.metrics.functional import image_to_uint8
from benchmarks.metrics.per_item import (
    BackgroundPreservation,
    CLIPScore,
    EditAccuracy,
    LPIPSDistance,
)
from benchmarks.metrics.weights import MetricUnavailableError, load_lpips
from instdiffedit.types import EditResult


def _random_image(height: int, width: int, seed: int = 0) -> PIL.Image.Image:
    return PIL.Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype(np.uint8))


def _pair(height: int = 40, width: int = 48) -> tuple[EditItem, EditResult]:
    item = EditItem(id="x", image=_random_image(height, width, 0), target="a red dog")
    return item, EditResult(image=_random_image(height, width, 1))


def _assert_one_sentence(error: MetricUnavailableError, *needles: str) -> None:
    message = str(error)
    for needle in needles:
        assert needle in message, (needle, message)
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message, message


@pytest.fixture
def empty_torch_hub(tmp_path: Path):
    """Point the torch hub cache at an empty folder, so weights must come from the (absent) network."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield
    torch.hub.set_dir(previous)


def _expect_unavailable(build):
    try:
        build()
    except MetricUnavailableError as error:
        return error
    pytest.skip("the real weights could be had here (cached or downloaded)")


# ------------------------------------------------------------------------------------------
# LPIPS
# ------------------------------------------------------------------------------------------


def test_lpips_applies_flexits_preprocessing_and_reports_x100() -> None:
    recorder = RecordingDistance(0.286)
    metric = LPIPSDistance(model=recorder)
    white = PIL.Image.new("RGB", (400, 300), (255, 255, 255))
    item = EditItem(id="x", image=white, target="t")
    assert metric(item, EditResult(image=PIL.Image.new("RGB", (400, 300)))) == {"lpips": pytest.approx(28.6)}
    ((edited, source),) = recorder.inputs
    assert edited.shape == source.shape == (1, 3, 256, 256)  # Resize(256) + CenterCrop(256)
    assert torch.all(source == 1) and torch.all(edited == -1)  # scaled to [-1, 1]


def test_lpips_with_a_random_alexnet_trunk_is_finite() -> None:
    import lpips

    torch.manual_seed(0)
    metric = LPIPSDistance(model=lpips.LPIPS(net="alex", pnet_rand=True, verbose=False))  # no download
    item, result = _pair()
    value = metric(item, result)["lpips"]
    assert math.isfinite(value) and value > 0
    assert metric(item, EditResult(image=item.image))["lpips"] == pytest.approx(0.0, abs=1e-6)


def test_lpips_loads_the_alexnet_trunk_from_a_local_file(tmp_path: Path) -> None:
    from torchvision.models import alexnet

    torch.manual_seed(0)
    features = alexnet().features
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = load_lpips(str(path))
    assert torch.equal(getattr(model.net.slice1, "0").weight, features[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").bias, features[10].bias)


def test_lpips_without_weights_fails_in_one_sentence(tmp_path: Path, empty_torch_hub) -> None:
    error = _expect_unavailable(LPIPSDistance)
    _assert_one_sentence(error, "AlexNet", "metrics.lpips.weights=/path/to/alexnet-owt-7be5be79.pth", "~metrics.lpips")
    with pytest.raises(MetricUnavailableError) as error:
        LPIPSDistance(weights=str(tmp_path / "missing.pth"))
    _assert_one_sentence(error.value, "is not a file", "metrics.lpips.weights=", "~metrics.lpips")
    error = _expect_unavailable(lambda: BackgroundPreservation(lpips=True))
    _assert_one_sentence(error, "metrics.background.weights=", "metrics.background.lpips=false")


# ------------------------------------------------------------------------------------------
# CLIP score
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip():
    return lambda seed: tiny_clip_model(seed)[0], tiny_clip_model(0)[1]


def _manual_cosine(model, processor, image: PIL.Image.Image, text: str) -> float:
    with torch.no_grad():
        pixels = processor(images=[image_to_uint8(image)], return_tensors="pt")["pixel_values"]
        tokens = processor(text=[text], return_tensors="pt", padding=True)
        a = model.get_image_features(pixels).pooler_output
        b = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
    return torch.nn.functional.cosine_similarity(a, b).item()


def test_torchmetrics_clipscore_breaks_on_transformers_5_without_the_adapter(tiny_clip) -> None:
    from torchmetrics.multimodal import CLIPScore as TorchmetricsCLIPScore

    build, processor = tiny_clip
    model = build(1)
    metric = TorchmetricsCLIPScore(model_name_or_path=lambda: (model, processor))
    try:
        metric.update([image_to_uint8(_random_image(40, 48))], ["a red dog"])
    except AttributeError as error:
        assert "BaseModelOutputWithPooling" in str(error) and "norm" in str(error)
    else:
        pytest.skip("torchmetrics or transformers no longer needs the adapter")


def test_clip_score_is_the_cosine_similarity(tiny_clip) -> None:
    build, processor = tiny_clip
    item, result = _pair()
    model = build(1)
    expected = _manual_cosine(model, processor, result.image, item.target)
    assert expected > 0  # this seed's random model gives a positive cosine
    assert CLIPScore(model=model, processor=processor)(item, result) == {"clip_score": pytest.approx(expected, abs=1e-5)}
    negative = build(0)
    assert _manual_cosine(negative, processor, result.image, item.target) < 0
    assert CLIPScore(model=negative, processor=processor)(item, result) == {"clip_score": 0.0}  # clamped, as torchmetrics


def test_clip_score_loads_a_local_folder(tiny_clip, tmp_path: Path) -> None:
    build, processor = tiny_clip
    model = build(1)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    item, result = _pair()
    expected = _manual_cosine(model, processor, result.image, item.target)
    assert CLIPScore(weights=str(tmp_path))(item, result) == {"clip_score": pytest.approx(expected, abs=1e-5)}


def test_clip_without_weights_fails_in_one_sentence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub's retries take a minute without a network
    error = _expect_unavailable(CLIPScore)
    _assert_one_sentence(error, "openai/clip-vit-large-patch14", "metrics.clip_score.weights=", "~metrics.clip_score")
    with pytest.raises(MetricUnavailableError) as error:
        CLIPScore(weights=str(tmp_path))
    _assert_one_sentence(error.value, str(tmp_path), "metrics.clip_score.weights=", "~metrics.clip_score")


# ------------------------------------------------------------------------------------------
# Edit accuracy
# ------------------------------------------------------------------------------------------

AFGHAN, GREYHOUND, BEAGLE = 160, 171, 162
SMALL = {"input_size": (3, 32, 32), "interpolation": "bicubic", "crop_pct": 1.0}


class _FixedLogits(nn.Module):
    """Logits where class 5 wins overall, Italian greyhound among the dog classes; keeps its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        logits = torch.zeros(x.shape[0], 1000)
        logits[:, 5] = 10.0
        logits[:, BEAGLE] = 4.0  # not a target class of the split below
        logits[:, AFGHAN] = 2.0
        logits[:, GREYHOUND] = 3.0
        return logits


def _imagenet_item(target: str, source: str | None = None) -> EditItem:
    meta = {"target_class": target} | ({"source_class": source} if source else {})
    return EditItem(id="x", image=_random_image(40, 48), target=target, meta=meta)


def test_accuracy_takes_the_top_class_among_the_target_classes_only() -> None:
    classifier = _FixedLogits()
    metric = EditAccuracy(classes=["Afghan hound", "Italian greyhound"], model=classifier, data_config=SMALL)
    edited = EditResult(image=_random_image(300, 200, 1))
    assert metric(_imagenet_item("Italian greyhound", "Afghan hound"), edited) == {"accuracy": 100.0, "unedited": 0.0}
    values = metric(_imagenet_item("Afghan hound"), edited)
    assert values["accuracy"] == 0.0 and math.isnan(values["unedited"])
    assert classifier.inputs[0].shape == (1, 3, 32, 32)  # the classifier's preprocessing was applied
    assert classifier.inputs[0].min() < 0  # ImageNet mean/std normalisation
    with pytest.raises(ValueError, match="not among"):
        metric(_imagenet_item("beagle"), edited)
    no_class = EditItem(id="y", image=_random_image(40, 48), target="a dog")
    assert all(math.isnan(v) for v in metric(no_class, edited).values())


def test_accuracy_classes_from_a_file_and_names_that_do_not_map(tmp_path: Path) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("n02088094\nItalian greyhound\n\n")
    metric = EditAccuracy(classes=str(classes), model=_FixedLogits(), data_config=SMALL)
    assert metric.class_indices == [AFGHAN, GREYHOUND]
    with pytest.raises(KeyError) as error:
        EditAccuracy(classes=["Afghan hound", "Afgan hound", "crane"], model=_FixedLogits(), data_config=SMALL)
    assert "'Afgan hound' is not an ImageNet-1k class" in str(error.value) and "'crane' is ambiguous" in str(error.value)
    unset = EditAccuracy(model=_FixedLogits(), data_config=SMALL)
    with pytest.raises(ValueError, match="metrics.accuracy.classes"):
        unset(_imagenet_item("Afghan hound"), EditResult(image=_random_image(40, 48)))
    unset.set_classes(["Afghan hound", "Italian greyhound"])
    assert unset(_imagenet_item("Italian greyhound"), EditResult(image=_random_image(40, 48)))["accuracy"] == 100.0


def test_accuracy_on_a_split_without_imagenet_classes_is_undefined_not_an_error() -> None:
    metric = EditAccuracy(model=_FixedLogits(), data_config=SMALL)
    metric.prepare(SyntheticDataset(n=1))  # like metrics=paper on the Imagen split: no target classes
    prompt_item = EditItem(id="y", image=_random_image(40, 48), target="a raccoon")
    assert all(math.isnan(v) for v in metric(prompt_item, EditResult(image=_random_image(40, 48))).values())


def test_accuracy_with_a_small_random_vit() -> None:
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1)
    metric = EditAccuracy(classes=["Afghan hound", "Italian greyhound", "beagle"], model=vit, data_config=SMALL)
    values = metric(_imagenet_item("beagle"), EditResult(image=_random_image(40, 48)))
    assert values["accuracy"] in (0.0, 100.0)


def test_accuracy_loads_a_local_timm_weight_file(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    from benchmarks.metrics.weights import load_timm_classifier

    torch.manual_seed(0)
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    save_file(reference.state_dict(), tmp_path / "model.safetensors")
    loaded = load_timm_classifier("deit_tiny_patch16_224", str(tmp_path / "model.safetensors"))
    assert torch.equal(loaded.head.weight, reference.head.weight) and not loaded.training


def test_accuracy_without_weights_fails_in_one_sentence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = _expect_unavailable(lambda: EditAccuracy(classes=["beagle"]))
    _assert_one_sentence(error, "deit_base_patch16_384", "metrics.accuracy.weights=", "~metrics.accuracy")
    with pytest.raises(MetricUnavailableError) as error:
        EditAccuracy(classes=["beagle"], weights=str(tmp_path / "missing.safetensors"))
    _assert_one_sentence(error.value, "is not a file", "metrics.accuracy.weights=", "~metrics.accuracy")


# ------------------------------------------------------------------------------------------
# Inception (FID, SFID)
# ------------------------------------------------------------------------------------------


def test_inception_metrics_without_weights_fail_in_one_sentence(tmp_path: Path, empty_torch_hub) -> None:
    error = _expect_unavailable(FID)
    _assert_one_sentence(
        error,
        "Inception",
        "metrics.corpus.fid.weights=/path/to/weights-inception-2015-12-05-6726825d.pth",
        "~metrics.corpus.fid",
    )
    means = tmp_path / "means.pt"
    torch.save({}, means)
    error = _expect_unavailable(lambda: SFID(means=str(means)))
    _assert_one_sentence(error, "metrics.corpus.sfid.weights=", "~metrics.corpus.sfid")
