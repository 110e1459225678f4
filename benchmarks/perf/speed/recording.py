"""A recorder of an edit's denoiser calls and their replay alone: the floors the edits are measured against."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.perf.speed.clock import Clock
from instdiffedit.fast_paths import (
    DenoiserRunner,
    denoiser_runner,
)


@dataclass(frozen=True)
class Call:
    """One recorded denoiser call, to be made again: through its runner (same shapes and timestep,
    same fast path, the attention processors it had or others) or, for calls made inside a
    diffusers pipeline, directly."""

    module: torch.nn.Module
    inputs: tuple[Any, ...]
    kwargs: dict[str, Any]
    runner: DenoiserRunner | None = None
    processors: tuple[object, ...] = ()

    def key(self, plain: dict[DenoiserRunner, tuple[object, ...]] | None = None) -> tuple:
        """What a CUDA graph is captured for: the runner, the inputs' shapes and the processors."""
        shapes = tuple((t.shape, t.dtype) if isinstance(t, torch.Tensor) else t for t in self.inputs)
        return id(self.runner), id(self.module), shapes, tuple(map(id, self.processors_for(plain)))

    def processors_for(self, plain: dict[DenoiserRunner, tuple[object, ...]] | None) -> tuple[object, ...]:
        """The processors to replay with: the recorded ones, or the runner's entry in ``plain``."""
        return self.processors if plain is None or self.runner is None else plain[self.runner]

    def __call__(self, plain: dict[DenoiserRunner, tuple[object, ...]] | None = None) -> object:
        if self.runner is None:
            return self.module(*self.inputs, **self.kwargs)
        processors = self.processors_for(plain)
        if self.runner.processors() != processors:
            self.runner.set_processors(processors)
        return self.runner(*self.inputs)


@contextmanager
def recording(*unets: torch.nn.Module) -> Iterator[list[Call]]:
    """Every call of the given denoisers: through their runners (the shared diffusion steps) and
    directly (inside diffusers pipelines), with a copy of its inputs."""
    calls: list[Call] = []

    def through(unet, runner):
        def listener(*call):
            calls.append(Call(unet, tuple(tensor.clone() for tensor in call), {}, runner, runner.processors()))

        return listener

    def direct(module, args, kwargs):
        calls.append(Call(module, tuple(_stand_in(a) for a in args), {k: _stand_in(v) for k, v in kwargs.items()}))

    handles = []
    for unet in dict.fromkeys(unets):
        runner = denoiser_runner(unet)
        handles += [runner.listen(through(unet, runner)), unet.register_forward_pre_hook(direct, with_kwargs=True)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _stand_in(value: Any) -> Any:
    """A tensor of the same shape, dtype, device and layout (values irrelevant to the cost), or the value."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


def plain_processors(unets: list[torch.nn.Module]) -> dict[DenoiserRunner, tuple[object, ...]]:
    """Each denoiser's own attention processors (those it has outside an attention capture)."""
    return {denoiser_runner(unet): denoiser_runner(unet).processors() for unet in unets}


def captures(calls: list[Call], plain: dict[DenoiserRunner, tuple[object, ...]]) -> bool:
    """Whether any call ran with other processors than the model's own (an attention capture)."""
    return any(call.runner is not None and call.processors != plain[call.runner] for call in calls)


@torch.no_grad()
def replay(calls: list[Call], unets: list[torch.nn.Module], clock: Clock, plain: dict[DenoiserRunner, tuple[object, ...]] | None = None) -> float:
    """Seconds to make the recorded calls again (with each model's ``plain`` processors, if given);
    the denoisers' processors are put back after.

    Each distinct call is made once first, untimed: a graph for a signature the edit never made
    (the plain processors at a capture's shapes) is captured then, and nothing else is cold.
    Replayed capture processors write into their store's current buffer, that of the row's own
    shapes (its last edit's), where nobody reads them.
    """
    runners = [denoiser_runner(unet) for unet in dict.fromkeys(unets)]
    processors = [runner.processors() for runner in runners]
    try:
        for call in {call.key(plain): call for call in calls}.values():
            call(plain)
        clock.sync()
        start = time.perf_counter()
        for call in calls:
            call(plain)
        clock.sync()
        return time.perf_counter() - start
    finally:
        for runner, taken in zip(runners, processors):
            runner.set_processors(taken)
