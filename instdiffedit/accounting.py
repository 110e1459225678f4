"""Where an edit's time and UNet work go: phase timers and a UNet evaluation counter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from instdiffedit.graphs import unet_runner

PHASES = ("mask", "edit", "inpaint")


class PhaseTimer:
    """Wall-clock seconds per phase of an edit.

    On CUDA the device is synchronised at phase boundaries only, so a phase's time includes
    the kernels it queued and nothing inside a denoising loop waits on the host.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.timings: dict[str, float] = {name: 0.0 for name in (*PHASES, "total")}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


class UNetEvalCounter:
    """Counts UNet image-evaluations: the batch rows of every forward call."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, sample: torch.Tensor, *_: object) -> None:
        self.count += int(sample.shape[0])

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # The latents: the first argument, or the keyword UNets (sample) or transformers (hidden_states) take them as.
        self.add(args[0] if args else kwargs["sample"] if "sample" in kwargs else kwargs["hidden_states"])


@contextmanager
def count_unet_evals(*unets: torch.nn.Module | None) -> Iterator[UNetEvalCounter]:
    """Count the image-evaluations of every given UNet (``None`` entries are skipped).

    The shared diffusion steps call a UNet through its runner (eager or replayed from a CUDA
    graph, never through the module's hooks), which reports every call; a forward pre-hook
    sees the calls made inside diffusers pipelines (LEDITS++, DiffEdit-DDIM, the instruction editors).
    """
    counter = UNetEvalCounter()
    handles = []
    for unet in dict.fromkeys(u for u in unets if u is not None):
        handles.append(unet_runner(unet).listen(counter.add))
        handles.append(unet.register_forward_pre_hook(counter._hook, with_kwargs=True))
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
