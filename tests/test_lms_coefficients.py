"""The sync-free LMS scheduler: the same numbers as diffusers', without integrating at every step."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, LMSDiscreteScheduler
from scipy import integrate

from benchmarks.models.tiny import SD14_SCHEDULER_CONFIG
from instdiffedit.lms_coefficients import (
    CachedLMSDiscreteScheduler,
    precompute,
    scheduler_class,
)


def _run(scheduler: LMSDiscreteScheduler, steps: int = 50, start: int = 25) -> list[torch.Tensor]:
    """A strength-0.5 loop with a fixed fake noise predictor; returns every step's latents."""
    scheduler.set_timesteps(steps)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    outputs = []
    for t in scheduler.timesteps[start:]:
        eps = torch.sin(scheduler.scale_model_input(x, t) * 3 + t / 1000)
        x = scheduler.step(eps, t, x).prev_sample
        outputs.append(x)
    return outputs


def test_cached_lms_steps_are_bit_identical_to_diffusers_lms() -> None:
    plain = _run(LMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG))
    cached_scheduler = CachedLMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG)
    first, second = _run(cached_scheduler), _run(cached_scheduler)
    for a, b, c in zip(plain, first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_after_precomputing_a_run_integrates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = CachedLMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG)
    scheduler.set_timesteps(50)
    precompute(scheduler, scheduler.timesteps[25:])
    calls = []
    quad = integrate.quad
    monkeypatch.setattr(integrate, "quad", lambda *a, **k: calls.append(1) or quad(*a, **k))
    _run(scheduler)
    assert calls == []


def test_a_new_scheduler_reuses_the_coefficients_of_a_schedule_another_one_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every editor builds its own backbone and so its own scheduler: the memo must outlive them."""
    first = CachedLMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG)
    expected = _run(first)
    calls = []
    quad = integrate.quad
    monkeypatch.setattr(integrate, "quad", lambda *a, **k: calls.append(1) or quad(*a, **k))
    again = _run(CachedLMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG))
    assert calls == []
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))
    _run(CachedLMSDiscreteScheduler.from_config(SD14_SCHEDULER_CONFIG), steps=37, start=20)  # another schedule: its own numbers
    assert calls


def test_scheduler_names_map_to_drop_ins_only_where_one_exists() -> None:
    assert scheduler_class("LMSDiscreteScheduler") is CachedLMSDiscreteScheduler
    assert scheduler_class("DDIMScheduler") is DDIMScheduler
    with pytest.raises(ValueError, match="Unknown scheduler"):
        scheduler_class("NoSuchScheduler")
