"""Training steps that run eagerly or as one replayed CUDA graph.

The toy models are small and the training step is launch-bound on a GPU (the UNet at batch 512
spent ~75 ms a step launching ~2,000 small kernels, torch.compile included): capturing the
whole step (forward, backward, gradient clipping, the optimiser's update and the EMA update)
once and replaying it removes the launch cost. What that needs, and what this module provides:

* the step reads its data from a dict of tensors, which the graph holds as static buffers that
  every call refills (:class:`TrainingStep`);
* the optimiser keeps its learning rate in a device tensor that the schedule updates in place
  between replays (:class:`LearningRate`; ``AdamW(capturable=True)``);
* the EMA's decay is a device tensor too (:class:`EMA`), set before every replay;
* random draws inside the step use the default generator, which graphs replay with fresh
  offsets (every replay draws anew).

On the CPU (the tests) the same step function runs eagerly: :class:`TrainingStep` calls it.
:class:`Trainer` puts one model's optimiser, schedule, EMA and step together; :func:`run_loop`
steps several trainers on shared batches, timed (:class:`Clock`) and within a deadline.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

StepFunction = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def bf16_autocast(device: torch.device) -> torch.autocast:
    """bfloat16 autocast on CUDA (off elsewhere), without the weight cache: a graph must recast at every
    replay (a cache would hold the capture's casts of weights that the optimiser has since changed)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``: a factor of the base rate."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(total, 1))))


def adamw(params: Iterable[nn.Parameter], lr: float, device: torch.device, weight_decay: float = 1e-2, graphed: bool = False) -> torch.optim.AdamW:
    """AdamW; for graph capture ``capturable`` and fused, with the learning rate as a device tensor."""
    if graphed:
        return torch.optim.AdamW(params, lr=torch.tensor(lr, device=device), weight_decay=weight_decay, capturable=True, fused=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")


class LearningRate:
    """Sets an optimiser's learning rate to ``base * factor`` between steps: in place where it is a tensor (graphs)."""

    def __init__(self, optimizer: torch.optim.Optimizer, base: float) -> None:
        self.optimizer, self.base = optimizer, base

    def set(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(self.base * factor)
            else:
                group["lr"] = self.base * factor


class EMA:
    """Exponential moving average of parameters with diffusers' EMA warm-up of the decay
    (``1 - (1 + step) ** -2/3``, capped at ``decay``), as tensor ops a graph can hold.

    :meth:`set_step` writes the step's decay into a device tensor outside the graph; :meth:`update`
    (inside the step) blends the parameters in.
    """

    def __init__(self, params: Iterable[nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.weight = torch.zeros((), device=self.params[0].device)  # 1 - the step's decay

    def set_step(self, step: int) -> None:
        self.weight.fill_(1 - min(self.decay, 1 - (1 + step) ** (-2 / 3)))

    @torch.no_grad()
    def update(self) -> None:
        difference = torch._foreach_sub(self.params, self.shadow)
        torch._foreach_mul_(difference, self.weight)
        torch._foreach_add_(self.shadow, difference)

    @torch.no_grad()
    def copy_to(self, params: Iterable[nn.Parameter]) -> None:
        for shadow, param in zip(self.shadow, params):
            param.copy_(shadow)

    def state_dict(self) -> dict:
        return {"shadow": [s.clone() for s in self.shadow]}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for shadow, saved in zip(self.shadow, state["shadow"]):
            shadow.copy_(saved)


class TrainingStep:
    """``fn(inputs) -> loss``, one whole training step, run eagerly or captured once and replayed.

    ``fn`` must take all its data from ``inputs`` (same shapes every call) and do everything a
    step does, the optimiser's update included; it is called as is when ``graphed`` is false.
    When true (CUDA), the first ``warmup`` calls run eagerly on a side stream (they initialise
    the optimiser's state and the libraries' workspaces, as capture requires; they are real
    steps), the next one captures ``fn`` on static copies of the inputs, and every call from
    then on copies its inputs into them and replays. The returned loss is then the graph's
    static output: clone it to keep it past the next call.
    """

    def __init__(self, fn: StepFunction, graphed: bool, warmup: int = 3) -> None:
        self.fn, self.graphed, self.warmup = fn, graphed, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: dict[str, torch.Tensor] = {}
        self.static_loss: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        if not self.graphed:
            return self.fn(inputs)
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.fn(inputs)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        if self.graph is None:
            self.static_inputs = {name: value.clone() for name, value in inputs.items()}
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_loss = self.fn(self.static_inputs)
        for name, value in inputs.items():
            self.static_inputs[name].copy_(value, non_blocking=True)
        self.graph.replay()
        return self.static_loss


class Trainer:
    """One model's optimiser, learning-rate schedule, optional EMA and step (eager or one CUDA graph).

    ``loss_fn(inputs)`` computes the loss; the step around it (zeroing, backward, clipping, the
    update, the EMA) is the same for every model, and is what the graph captures.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        loss_fn: StepFunction,
        *,
        lr: float,
        total: int,
        warmup: int,
        graphed: bool,
        extra_params: tuple[nn.Parameter, ...] = (),
        ema_decay: float | None = None,
        clip: float | None = 1.0,
        weight_decay: float = 1e-2,
    ) -> None:
        self.name, self.module, self.loss_fn, self.total, self.warmup = name, module, loss_fn, total, warmup
        self.params = [*module.parameters(), *extra_params]
        self.optimizer = adamw(self.params, lr, self.params[0].device, weight_decay, graphed)
        self.lr = LearningRate(self.optimizer, lr)
        self.ema = EMA(self.params, ema_decay) if ema_decay is not None else None
        self.clip = clip
        self.run: TrainingStep | None = TrainingStep(self._step, graphed)
        self.done = 0
        self.losses: list[tuple[int, torch.Tensor]] = []

    def _step(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(inputs)
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        return loss.detach()

    def step(self, inputs: dict[str, torch.Tensor]) -> None:
        self.lr.set(warmup_cosine(self.done, self.total, self.warmup))
        if self.ema is not None:
            self.ema.set_step(self.done)
        loss = self.run(inputs)
        if self.done % 50 == 0:  # kept on the device: reading a loss would wait for the step
            self.losses.append((self.done, loss.clone()))
        self.done += 1

    def finish(self) -> nn.Module:
        """The trained module (its EMA weights if it has one), frozen, in eval mode; the captured graph
        (and the memory it holds) is let go: there are no more steps."""
        if self.ema is not None:
            self.ema.copy_to(self.params)
        self.run = None
        return self.module.eval().requires_grad_(False)

    def loss_history(self) -> list[tuple[int, float]]:
        return [(step, float(value)) for step, value in self.losses]

    def state_dict(self) -> dict:
        """Parameters (the module's and the extra ones), optimiser, EMA, steps done and losses: what a resumed run needs."""
        return {
            "params": [p.detach().clone() for p in self.params],
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "done": self.done,
            "ema": self.ema.state_dict() if self.ema else None,
            "losses": self.loss_history(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Before the first step (a captured graph keeps the tensors it was captured with: this copies into them)."""
        with torch.no_grad():
            for param, saved in zip(self.params, state["params"], strict=True):
                param.copy_(saved)
        rates = [group["lr"] for group in self.optimizer.param_groups]  # a graph's rate must stay the same device tensor
        self.optimizer.load_state_dict(state["optimizer"])
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.done = state["done"]
        device = self.params[0].device
        self.losses = [(step, torch.tensor(value, device=device)) for step, value in state["losses"]]


class Clock:
    """Per-stage wall seconds, and per-step milliseconds measured after the graphs' capture (synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.ms_per_step = device, {}, {}
        self.started = time.perf_counter()

    def sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timed(self, name: str, fn: Callable, *args):
        started = self.sync()
        result = fn(*args)
        self.seconds[name] = round(self.sync() - started, 1)
        print(f"[toy.train] {name}: {self.seconds[name]:.1f} s (at {self.elapsed():.0f} s)", flush=True)
        return result


def run_loop(
    trainers: list[Trainer],
    batches: Callable[[], dict[str, torch.Tensor]],
    inputs_of: dict[str, Callable],
    clock: Clock,
    label: str,
    deadline: float | None = None,
    reserve: float = 0.0,
    checkpoint: Callable[[], None] | None = None,
    checkpoint_every: int = 0,
    time_each: bool = False,
) -> dict:
    """Step every trainer that has steps left on each batch until all are done; timing and the deadline.

    Per-step times are measured from the step after the graphs' capture (the 5th) to the end. With
    ``deadline`` (seconds on ``clock``), steps 50-150 are timed (the first ones run slower), and the
    remaining steps of every trainer are cut by one factor if they would end later than
    ``deadline - reserve``; the cosine schedules follow the new totals. ``time_each`` synchronises
    around every model's step to time each one alone (``--smoke``).
    """
    measure_from, probe_from, probe_steps = 5, 50, 100
    iteration, measured_from, info = 0, None, {}
    each = {t.name: 0.0 for t in trainers}
    progress = tqdm(total=max(t.total - t.done for t in trainers), desc=label, mininterval=30)
    while any(t.done < t.total for t in trainers):
        inputs = batches()
        for trainer in trainers:
            if trainer.done < trainer.total:
                began = clock.sync() if time_each and measured_from is not None else 0.0
                trainer.step(inputs_of[trainer.name](inputs))
                if time_each and measured_from is not None:
                    each[trainer.name] += clock.sync() - began
        iteration += 1
        progress.update()
        if iteration == measure_from:
            measured_from, measured_at = iteration, clock.sync()
        if deadline is not None and iteration == probe_from:
            probed_at = clock.sync()
        if deadline is not None and iteration == probe_from + probe_steps:
            per_step = (clock.sync() - probed_at) / probe_steps
            room = deadline - reserve - clock.elapsed()
            left = max(t.total - t.done for t in trainers)
            if left * per_step > room:
                factor = max(room, 0.0) / per_step / left
                info["deadline_cut"] = {
                    "factor": round(factor, 3),
                    "at_step": iteration,
                    "ms_per_step": round(per_step * 1e3, 2),
                    "planned": {t.name: t.total for t in trainers},
                }
                for trainer in trainers:
                    trainer.total = trainer.done + math.floor((trainer.total - trainer.done) * factor)
                info["deadline_cut"]["cut_to"] = {t.name: t.total for t in trainers}
                print(f"[toy.train] {label}: the deadline cuts the schedule to {info['deadline_cut']['cut_to']}", flush=True)
        if checkpoint is not None and checkpoint_every and iteration % checkpoint_every == 0:
            checkpoint()
    progress.close()
    if measured_from is not None and iteration > measured_from:
        clock.ms_per_step[label] = round((clock.sync() - measured_at) / (iteration - measured_from) * 1e3, 2)
        if time_each:
            for name, seconds in each.items():
                clock.ms_per_step[f"{label}/{name}"] = round(seconds / (iteration - measured_from) * 1e3, 2)
    return info
