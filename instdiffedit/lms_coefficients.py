"""Schedulers whose ``step`` does no host work that depends on the step's data.

diffusers' ``LMSDiscreteScheduler.step`` integrates its linear-multistep coefficients with
``scipy.integrate.quad`` on the host at every step: hundreds of scalar torch operations per
step, which hold the Python thread while the GPU waits for the next launch. The coefficients
depend only on the sigma schedule, the step index and the order, so they are computed once
(with the very same code and float32 sigmas, so every value is bit-identical) and looked up
afterwards, across denoising runs with the same schedule.

The memo is the process's, not a scheduler instance's: every backbone builds its own scheduler,
and an editor built for a new run (or for each timed edit of the speed benchmark) would otherwise
integrate again, about 70 ms of host time per 25-step run in which the device waits.
"""

from __future__ import annotations

import diffusers
import torch
from diffusers import LMSDiscreteScheduler

_LMS_COEFFICIENTS: dict[tuple[bytes, int, int, int], float] = {}
"""(sigma schedule's bytes, order, step index, current order) -> the integrated coefficient."""


class CachedLMSDiscreteScheduler(LMSDiscreteScheduler):
    """``LMSDiscreteScheduler`` with memoised coefficients: the same numbers, no per-step integration.

    The memo is keyed by the sigma schedule's bytes, so it survives ``set_timesteps`` (every
    edit resets the scheduler) and new instances, and is never reused for a different schedule.
    """

    def set_timesteps(self, *args, **kwargs) -> None:
        super().set_timesteps(*args, **kwargs)
        self._schedule_key = self.sigmas.detach().cpu().numpy().tobytes()

    def get_lms_coefficient(self, order: int, t: int, current_order: int) -> float:
        schedule = getattr(self, "_schedule_key", None)
        if schedule is None:  # set_timesteps not called through this class: no memo
            return super().get_lms_coefficient(order, t, current_order)
        key = (schedule, order, t, current_order)
        if key not in _LMS_COEFFICIENTS:
            _LMS_COEFFICIENTS[key] = super().get_lms_coefficient(order, t, current_order)
        return _LMS_COEFFICIENTS[key]


_SYNC_FREE = {LMSDiscreteScheduler: CachedLMSDiscreteScheduler}


def scheduler_class(name: str) -> type:
    """The diffusers scheduler class called ``name``, or its drop-in with the same outputs and less host work."""
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"Unknown scheduler {name!r}: give a diffusers scheduler class name, e.g. 'LMSDiscreteScheduler'.")
    return _SYNC_FREE.get(cls, cls)


def precompute(scheduler: object, timesteps: torch.Tensor, order: int = 4) -> None:
    """Fill the memo of a :class:`CachedLMSDiscreteScheduler` for a run over ``timesteps``.

    Called before a loop so its first run does no integration either; a no-op for other schedulers.
    """
    if not isinstance(scheduler, CachedLMSDiscreteScheduler):
        return
    first = len(scheduler.timesteps) - len(timesteps)
    for index in range(first, len(scheduler.timesteps)):
        current = min(index + 1, order)  # as LMSDiscreteScheduler.step picks it
        for k in range(current):
            scheduler.get_lms_coefficient(current, index, k)
