"""Where an edit's time and UNet work go: phase timers and a UNet evaluation counter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from instdiffedit.fast_paths import denoiser_runner

PHASES = ("mask", "edit", "inpaint")


class PhaseTimer:
    """Seconds per phase of an edit.

    On CUDA a phase is timed by two CUDA events recorded on the current stream: nothing waits for
    the device at a phase boundary, so the host prepares the next phase while the device still
    runs this one, and :attr:`timings` waits once, for the events of the edit. A phase's seconds
    run from the moment the device reaches its start (idle at an edit's start, so the host work
    before its first kernel counts) to the moment it completes the work queued before its end.
    Elsewhere the wall clock.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._spans: list[tuple[str, float | torch.cuda.Event, float | torch.cuda.Event]] = []

    def _mark(self) -> float | torch.cuda.Event:
        if self.device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = self._mark()
        try:
            yield
        finally:
            self._spans.append((name, start, self._mark()))

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per phase (every phase of :data:`PHASES` and ``"total"``, 0 where none ran)."""
        timings = dict.fromkeys((*PHASES, "total"), 0.0)
        for name, start, end in self._spans:
            if isinstance(end, torch.cuda.Event):
                end.synchronize()
                seconds = start.elapsed_time(end) / 1000
            else:
                seconds = end - start
            timings[name] = timings.get(name, 0.0) + seconds
        return timings


class DenoiserEvalCounter:
    """Counts UNet image-evaluations: the batch rows of every forward call."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, sample: torch.Tensor, *_: object) -> None:
        self.count += int(sample.shape[0])

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # The latents: the first argument, or the keyword UNets (sample) or transformers (hidden_states) take them as.
        self.add(args[0] if args else kwargs["sample"] if "sample" in kwargs else kwargs["hidden_states"])


@contextmanager
def count_denoiser_evals(*unets: torch.nn.Module | None) -> Iterator[DenoiserEvalCounter]:
    """Count the image-evaluations of every given UNet (``None`` entries are skipped).

    The shared diffusion steps call a UNet through its runner (eager or replayed from a CUDA
    graph, never through the module's hooks), which reports every call; a forward pre-hook
    sees the calls made inside diffusers pipelines (LEDITS++, DiffEdit-DDIM, the instruction editors).
    """
    counter = DenoiserEvalCounter()
    handles = []
    for unet in dict.fromkeys(u for u in unets if u is not None):
        handles.append(denoiser_runner(unet).listen(counter.add))
        handles.append(unet.register_forward_pre_hook(counter._hook, with_kwargs=True))
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
