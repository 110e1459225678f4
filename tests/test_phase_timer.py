"""Phase timing: seconds per phase of an edit, without waiting for the device at a phase boundary."""

from __future__ import annotations

import time

import pytest
import torch

from instdiffedit.accounting import PHASES, PhaseTimer


def test_phases_nest_and_a_phase_entered_twice_adds_up() -> None:
    timer = PhaseTimer("cpu")
    with timer.phase("total"):
        for _ in range(2):
            with timer.phase("mask"):
                time.sleep(0.01)
    timings = timer.timings
    assert set(timings) == {*PHASES, "total"} and timings["edit"] == timings["inpaint"] == 0.0
    assert 0.02 <= timings["mask"] <= timings["total"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_phase_boundaries_queue_events_and_never_wait_for_the_device() -> None:
    timer = PhaseTimer(torch.device("cuda"))
    x = torch.randn(2048, 2048, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync raises
    try:
        with timer.phase("total"):
            with timer.phase("mask"):
                for _ in range(20):
                    x = x @ x / 2048**0.5
            with timer.phase("edit"):
                x = x + 1
    finally:
        torch.cuda.set_sync_debug_mode(0)
    timings = timer.timings  # waits once, for the events
    assert 0 < timings["mask"] <= timings["total"] and timings["edit"] > 0
