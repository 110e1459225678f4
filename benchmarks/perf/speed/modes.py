"""The modes: the denoisers' fast paths (:mod:`instdiffedit.fast_paths`), each optionally with ``channels_last``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from benchmarks.models.loading import Pipelines
from benchmarks.perf.speed.models import denoised_pipelines, denoisers
from instdiffedit.fast_paths import (
    accelerate,
    denoiser_runner,
    reset,
)

MODES = ("eager", "graphs", "compiled")


def parse_mode(spec: str) -> tuple[str, bool]:
    """``graphs+cl`` -> ("graphs", True): the fast path and channels_last."""
    base, _, suffix = spec.partition("+")
    if base not in MODES or suffix not in ("", "cl"):
        raise SystemExit(f"error: unknown mode {spec!r}; choose from {', '.join(MODES)}, each optionally with +cl (channels_last).")
    return base, suffix == "cl"


@contextmanager
def mode_applied(pipes: Pipelines, spec: str) -> Iterator[None]:
    fast_path, channels_last = parse_mode(spec)
    unets = denoisers(pipes)
    vaes = list(dict.fromkeys(pipe.vae for pipe in denoised_pipelines(pipes)))
    for unet in unets:
        accelerate(unet, fast_path=fast_path, channels_last=channels_last)
    for vae in vaes if channels_last else ():
        accelerate(vae, channels_last=True)
    try:
        yield
    finally:
        for module in (*unets, *vaes):
            reset(module)


def release_graphs(pipes: Pipelines, device: torch.device) -> None:
    """Drop every captured graph, so each row pays its own captures and holds only its own memory."""
    for unet in denoisers(pipes):
        denoiser_runner(unet).clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
