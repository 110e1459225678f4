"""SDXL / SD 3.5 / FLUX.1 model configs: each composes and loads, and a missing real model fails in one sentence."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from benchmarks.models.families import FamilyPipelines, load_family
from benchmarks.models.loading import ModelUnavailableError
from benchmarks.models.tiny_families import (
    TINY_FAMILY_VERSION,
    tiny_family_pipelines,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
REAL = {
    "sdxl": ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
    "sd35_medium": ("sd3", "stabilityai/stable-diffusion-3.5-medium", None),
    "sd35_large": ("sd3", "stabilityai/stable-diffusion-3.5-large", None),
    "flux_dev": ("flux", "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-Fill-dev"),
    "flux_schnell": ("flux", "black-forest-labs/FLUX.1-schnell", None),
}
TINY = {"tiny_sdxl": ("sdxl", True), "tiny_sd3": ("sd3", False), "tiny_flux": ("flux", True)}


def _model_config(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"model={name}", "device=cpu", *overrides]).model


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache and no network, so a model cached on this machine cannot mask the test."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", TINY)
def test_each_tiny_config_composes_and_loads_its_family(name) -> None:
    family, has_twin = TINY[name]
    pipes = instantiate(_model_config(name))
    assert isinstance(pipes, FamilyPipelines)
    assert pipes.family == family and pipes.resolution == 64
    assert (pipes.inpaint is not None) == has_twin


@pytest.mark.parametrize("name", REAL)
def test_each_real_config_names_the_hub_ids_at_1024_px(name) -> None:
    family, base, inpaint = REAL[name]
    cfg = _model_config(name)
    assert (cfg.family, cfg.base, cfg.inpaint, cfg.resolution) == (family, base, inpaint, 1024)
    assert cfg.dtype == ("float16" if family == "sdxl" else "bfloat16")


@pytest.mark.parametrize("name", REAL)
def test_a_real_model_missing_offline_fails_in_one_sentence_naming_its_id_and_key(name, empty_hub_cache) -> None:
    with pytest.raises(InstantiationException) as caught:
        instantiate(_model_config(name))
    error = caught.value.__cause__
    assert isinstance(error, ModelUnavailableError)
    message = str(error)
    assert "\n" not in message and message.endswith(".") and ". " not in message
    base = REAL[name][1]
    assert f"Could not load {base!r}" in message and "model.base" in message and f"hf download {base}" in message


def test_a_missing_twin_names_the_inpaint_key(empty_hub_cache, _private_cache) -> None:
    tiny_family_pipelines("flux", _private_cache, device="cpu", inpaint=False)
    base = str(_private_cache / f"tiny-flux-{TINY_FAMILY_VERSION}" / "base")
    with pytest.raises(ModelUnavailableError, match="'black-forest-labs/FLUX.1-Fill-dev'.*model.inpaint"):
        load_family("flux", base, "black-forest-labs/FLUX.1-Fill-dev", resolution=1024, device="cpu")


def test_a_twin_for_a_family_without_one_is_refused_before_loading(tmp_path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ValueError, match="sd3 family has no inpainting twin.*set model.inpaint=null"):
        load_family("sd3", missing, "someone/sd3-inpainting", resolution=1024)


def test_an_unknown_family_is_refused_before_loading(tmp_path) -> None:
    with pytest.raises(ValueError, match="Unknown model.family 'sd4'; expected one of: sdxl, sd3, flux"):
        load_family("sd4", str(tmp_path / "no-such-model"), resolution=1024)
