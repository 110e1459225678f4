"""Behaviour of model loading: clear one-sentence errors when a model cannot be had."""

from __future__ import annotations

import time

import huggingface_hub
import pytest
import torch

from benchmarks.models import loading
from benchmarks.models.loading import (
    SD14_BASE,
    ModelUnavailableError,
    load_pretrained,
    resolve_device,
    resolve_dtype,
)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so a model cached on this machine cannot mask the test."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def _assert_one_sentence(message: str) -> None:
    assert "\n" not in message
    assert message.endswith(".")
    assert ". " not in message


class TestUnavailableModels:
    def test_offline_hub_id_names_the_id_and_the_config_key(self, empty_hub_cache, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        start = time.perf_counter()
        with pytest.raises(ModelUnavailableError) as caught:
            load_pretrained(SD14_BASE, device="cpu")
        assert time.perf_counter() - start < 10

        message = str(caught.value)
        _assert_one_sentence(message)
        assert SD14_BASE in message
        assert "model.base" in message
        assert f"hf download {SD14_BASE}" in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__

    def test_unreachable_hub_tries_the_cache_then_the_network_once(self, monkeypatch):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        fake = _FailingPipeline(OSError("Cannot load model"), cause=ConnectionError("dns"))
        monkeypatch.setattr(loading, "StableDiffusionPipeline", fake)

        with pytest.raises(ModelUnavailableError, match="the hub is unreachable") as caught:
            load_pretrained("someone/some-model", device="cpu")

        assert [call["local_files_only"] for call in fake.calls] == [True, False]
        _assert_one_sentence(str(caught.value))

    def test_hub_cache_hit_needs_no_network(self, monkeypatch):
        fake = _FailingPipeline(None)
        monkeypatch.setattr(loading, "StableDiffusionPipeline", fake)
        load_pretrained("someone/some-model", device="cpu")
        assert [call["local_files_only"] for call in fake.calls] == [True]

    def test_missing_local_folder_names_the_path(self, tmp_path):
        missing = tmp_path / "no-such-model"
        with pytest.raises(ModelUnavailableError) as caught:
            load_pretrained(str(missing), device="cpu")
        message = str(caught.value)
        _assert_one_sentence(message)
        assert str(missing) in message
        assert "model.base" in message

    def test_folder_without_model_index_names_the_path_and_key(self, tmp_path):
        with pytest.raises(ModelUnavailableError, match="model_index.json") as caught:
            load_pretrained(str(tmp_path), device="cpu", base_key="model.custom")
        message = str(caught.value)
        _assert_one_sentence(message)
        assert str(tmp_path) in message and "model.custom" in message


class TestResolve:
    def test_auto_dtype_is_half_on_cuda_and_float_on_cpu(self):
        assert resolve_dtype("auto", "cuda") == torch.float16
        assert resolve_dtype("auto", torch.device("cuda:1")) == torch.float16
        assert resolve_dtype("auto", "cpu") == torch.float32

    @pytest.mark.parametrize(
        ("name", "dtype"),
        [("float16", torch.float16), ("bfloat16", torch.bfloat16), ("float32", torch.float32)],
    )
    def test_explicit_dtypes(self, name, dtype):
        assert resolve_dtype(name, "cpu") == dtype

    def test_the_inpainting_model_can_run_in_another_precision_than_the_base(self, tiny, _private_cache):
        """The authors' setup: the base model in float32, SD-inpainting in float16."""
        from benchmarks.models.tiny import TINY_MODEL_NAME

        root = _private_cache / TINY_MODEL_NAME
        mixed = load_pretrained(str(root / "base"), str(root / "inpaint"), device="cpu", dtype="float32", inpaint_dtype="bfloat16")
        assert (mixed.base.unet.dtype, mixed.inpaint.unet.dtype) == (torch.float32, torch.bfloat16)
        same = load_pretrained(str(root / "base"), str(root / "inpaint"), device="cpu", dtype="bfloat16")
        assert (same.base.unet.dtype, same.inpaint.unet.dtype) == (torch.bfloat16, torch.bfloat16)

    def test_unknown_dtype_lists_the_allowed_values(self):
        with pytest.raises(ValueError, match="auto, float16, bfloat16, float32"):
            resolve_dtype("fp16", "cpu")

    def test_auto_device_follows_cuda_availability(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device("auto") == torch.device("cpu")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("auto") == torch.device("cuda")
        assert resolve_device("cpu") == torch.device("cpu")


class _FailingPipeline:
    """Stands in for a pipeline class: records from_pretrained calls and fails as told."""

    def __init__(self, error: Exception | None, cause: Exception | None = None):
        self.error, self.cause, self.calls = error, cause, []

    def from_pretrained(self, name, local_files_only=False, **kwargs):
        self.calls.append({"name": name, "local_files_only": local_files_only, **kwargs})
        if self.error is None:
            return _StubPipeline()
        raise self.error from self.cause


class _StubPipeline:
    def to(self, device):
        return self

    def set_progress_bar_config(self, **kwargs):
        pass


class TestSpeedOptions:
    def test_every_model_config_whose_loader_takes_the_speed_options_sets_the_librarys_defaults(self):
        import importlib
        import inspect
        from pathlib import Path

        from omegaconf import OmegaConf

        from instdiffedit.fast_paths import DEFAULT_FAST_PATH

        checked = []
        for config in sorted((Path(__file__).resolve().parents[1] / "conf" / "model").glob("*.yaml")):
            model = OmegaConf.load(config)
            module, _, name = model._target_.rpartition(".")
            if "fast_path" not in inspect.signature(getattr(importlib.import_module(module), name)).parameters:
                continue
            assert set(loading.SPEED_OPTIONS) <= set(model), config.name
            assert model.fast_path == DEFAULT_FAST_PATH, config.name
            checked.append(config.stem)
        assert {"sd14", "tiny", "toy"} <= set(checked)

    def test_an_unknown_fast_path_is_refused_before_any_model_loads(self, monkeypatch):
        failing = _FailingPipeline(AssertionError("must not load"))
        monkeypatch.setattr(loading, "StableDiffusionPipeline", failing)
        with pytest.raises(ValueError, match="model.fast_path: Unknown fast path 'turbo'; choose one of auto, graphs, compiled, eager"):
            load_pretrained("/nowhere", fast_path="turbo")
        assert failing.calls == []


def test_the_sd_loader_refuses_another_family_before_loading(tmp_path) -> None:
    with pytest.raises(ValueError, match="model.family='sdxl', but load_pretrained loads SD 1.x/2.x.*load_family"):
        load_pretrained(str(tmp_path / "no-such-model"), family="sdxl")
