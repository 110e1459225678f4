"""Shared fixtures: the tiny model is built once per test session into a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks.models import Pipelines


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test and every run.py subprocess uses a cache folder of this session only."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["INSTDIFFEDIT_CACHE"] = str(cache)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    return cache


@pytest.fixture(scope="session")
def tiny(_private_cache: Path) -> Pipelines:
    from benchmarks.tiny_model import tiny_pipelines

    torch.set_num_threads(min(2, torch.get_num_threads()))
    return tiny_pipelines(_private_cache, device="cpu")


@pytest.fixture(scope="session")
def tiny_family(_private_cache: Path):
    """``tiny_family(name)``: the tiny model of family ``"sd"`` (the tiny SD model), ``"sdxl"``, ``"sd3"``
    or ``"flux"``, with its inpainting twin where the family has one, loaded once per session."""
    from benchmarks.tiny_families import tiny_family_pipelines
    from benchmarks.tiny_model import tiny_pipelines

    torch.set_num_threads(min(2, torch.get_num_threads()))
    loaded: dict[str, Pipelines] = {}

    def load(family: str) -> Pipelines:
        if family not in loaded:
            loaded[family] = tiny_pipelines(_private_cache, device="cpu") if family == "sd" else tiny_family_pipelines(family, _private_cache, device="cpu")
        return loaded[family]

    return load


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
