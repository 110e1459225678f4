"""Shared fixtures: every cache of the session lives in a temporary folder, never in the user's home.

The environment is set when this file is imported, before pytest imports any test module: an
environment copied at import time (``ENV = {**os.environ, ...}`` for a ``run.py`` subprocess)
or a library that reads its cache folder at import (huggingface_hub, torch) already sees the
private folders. At the end of the session, a check fails the run if the user's own
``~/.cache/instdiffedit`` or ``~/.cache/wandb`` changed anyway (W&B's system monitor writes its
debug log under ``WANDB_CACHE_DIR``, not ``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="instdiffedit-tests-"))
PRIVATE_CACHE = _SESSION_HOME / "instdiffedit"
os.environ.update(
    INSTDIFFEDIT_CACHE=str(PRIVATE_CACHE),
    XDG_CACHE_HOME=str(_SESSION_HOME / "xdg-cache"),  # Hugging Face, torch hub, matplotlib, W&B caches
    WANDB_CACHE_DIR=str(_SESSION_HOME / "wandb-cache"),
    WANDB_CONFIG_DIR=str(_SESSION_HOME / "wandb-config"),
    WANDB_DATA_DIR=str(_SESSION_HOME / "wandb-data"),
    WANDB_MODE="offline",
    WANDB_SILENT="true",
)

# Imported after the environment above, on purpose.
import pytest
import torch

from benchmarks.data.items import EditItem
from benchmarks.models.loading import Pipelines

USER_CACHES = [Path.home() / ".cache" / name for name in ("instdiffedit", "wandb")]


def _listing(folders: list[Path]) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for folder in folders if folder.exists() for p in [folder, *folder.rglob("*")]}


_USER_CACHE_BEFORE = _listing(USER_CACHES)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when any test (or a subprocess it started) wrote into the user's caches."""
    after = _listing(USER_CACHES)
    if after != _USER_CACHE_BEFORE:
        changed = sorted(set(after.items()) ^ set(_USER_CACHE_BEFORE.items()))
        print(
            f"\nerror: {' or '.join(map(str, USER_CACHES))} (the user's own caches) changed during the tests: a test, a subprocess it started "
            f"or another process on this machine wrote {[path for path, _ in changed][:5]}"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def _private_cache() -> Path:
    """The session's cache folder (``$INSTDIFFEDIT_CACHE`` of every test and every run.py subprocess)."""
    PRIVATE_CACHE.mkdir(parents=True, exist_ok=True)
    return PRIVATE_CACHE


@pytest.fixture(scope="session")
def tiny(_private_cache: Path) -> Pipelines:
    from benchmarks.models.tiny import tiny_pipelines

    torch.set_num_threads(min(2, torch.get_num_threads()))
    return tiny_pipelines(_private_cache, device="cpu")


@pytest.fixture(scope="session")
def tiny_family(_private_cache: Path):
    """``tiny_family(name)``: the tiny model of family ``"sd"`` (the tiny SD model), ``"sdxl"``, ``"sd3"``
    or ``"flux"``, with its inpainting twin where the family has one, loaded once per session."""
    from benchmarks.models.tiny import tiny_pipelines
    from benchmarks.models.tiny_families import tiny_family_pipelines

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


@pytest.fixture(scope="session")
def seeded() -> Callable[..., torch.Generator]:
    """``seeded(seed=7)``: a fresh CPU generator; an edit repeated with the same seed draws the same noise."""
    return lambda seed=7: torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def item() -> EditItem:
    """One synthetic item (a coloured shape, its exact mask and edit texts) at 80 px: not the tiny
    model's working size (64), so results come back resized, as real inputs' do."""
    from benchmarks.data.synthetic import SyntheticDataset

    return SyntheticDataset(n=1, size=80).load("synthetic-00000")
