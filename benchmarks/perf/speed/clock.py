"""The device's clock and peak memory, and the run's time budget."""

from __future__ import annotations

import math
import time

import torch


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gb(self) -> float:
        """Peak memory the allocator reserved: a graph's replays allocate nothing, so only the
        reserved memory (its pool included) shows what they use."""
        return torch.cuda.max_memory_reserved(self.device) / 2**30 if self.device.type == "cuda" else math.nan


class Budget:
    """The run's time budget (``--budget-s``): no measurement starts that is expected to end after it."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.started = seconds, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spent(self) -> bool:
        return self.elapsed > self.seconds

    def fits(self, seconds: float) -> bool:
        return self.elapsed + seconds <= self.seconds
