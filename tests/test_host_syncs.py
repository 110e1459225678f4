"""Nothing inside a denoising loop waits for the device, on every backbone: InstDiffEdit's mask
loop, DiffEdit's, SDEdit's, both inpainting loops (the family's twin and latent blending), and
FlowEdit's on the flow-matching backbones.

The loops are watched from their first model input to their end. On a CPU the calls that would
wait on a GPU are caught (tests/fakes.HostSyncs); on CUDA (``pytest -m cuda``) torch's sync
debug mode raises at any synchronising operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from diffusers import EulerDiscreteScheduler, LMSDiscreteScheduler
from fakes import HostSyncs

from baselines import DiffEdit, FlowEdit, SDEdit
from benchmarks.models.tiny import tiny_pipelines
from benchmarks.models.tiny_families import tiny_family_pipelines
from instdiffedit import InstDiffEdit
from instdiffedit.backbones import Backbone

STEPS = 10
FAMILIES = ("sd", "sdxl", "sd3", "flux")
METHODS = ("instdiffedit", "instdiffedit, latent-blend inpainting", "diffedit", "sdedit", "flowedit")


# Schedulers that keep their sigmas on the CPU on purpose (diffusers' set_timesteps: `self.sigmas =
# sigmas.to("cpu")  # to avoid too much CPU/GPU communication`): reading them waits for no device.
HOST_TABLES = {EulerDiscreteScheduler: ("sigmas",), LMSDiscreteScheduler: ("sigmas",)}


def _host_tables(scheduler) -> list[torch.Tensor]:
    names = next((names for cls, names in HOST_TABLES.items() if isinstance(scheduler, cls)), ())
    return [getattr(scheduler, name) for name in names]


def watch_syncs(syncs: HostSyncs) -> tuple[Callable[[Backbone], None], Callable[[], None]]:
    """``arm`` and ``disarm`` callbacks that switch ``syncs`` on and off for one loop."""

    def arm(backbone: Backbone) -> None:
        syncs.host_resident(*_host_tables(backbone.schedule.scheduler))
        syncs.armed = True

    return arm, lambda: setattr(syncs, "armed", False)


@contextmanager
def inside_denoising_loops(monkeypatch, arm: Callable[[Backbone], None], disarm: Callable[[], None]) -> Iterator[list[int]]:
    """Call ``arm(backbone)`` at each loop's first model input and ``disarm()`` when the loop returns;
    yields the number of loops watched."""
    loops = [0]
    sample_loop = Backbone.sample_loop  # every loop: denoise's and FlowEdit's

    def watched(self, *args, **kwargs):
        schedule = self.schedule
        model_input = schedule.model_input

        def first_call_arms(*a, **k):
            arm(self)
            return model_input(*a, **k)

        schedule.model_input = first_call_arms
        try:
            return sample_loop(self, *args, **kwargs)
        finally:
            del schedule.model_input
            disarm()
            loops[0] += 1

    with monkeypatch.context() as patch:  # undone on exit, so that a test may watch one editor after another
        patch.setattr(Backbone, "sample_loop", watched)
        yield loops


def _editors(pipes, family: str) -> dict[str, object]:
    editors = {
        "instdiffedit": lambda: InstDiffEdit(pipes.base, pipes.inpaint, num_inference_steps=STEPS, inpaint_steps=4),
        "instdiffedit, latent-blend inpainting": lambda: InstDiffEdit(pipes.base, None, num_inference_steps=STEPS, inpaint_steps=4),
        "diffedit": lambda: DiffEdit(pipes.base, pipes.inpaint, num_noises=2, num_inference_steps=STEPS, inpaint_steps=4),
        "sdedit": lambda: SDEdit(pipes.base, num_inference_steps=STEPS),
        # n_min > 0: the switch to plain sampling happens inside the watched loop too
        "flowedit": lambda: FlowEdit(pipes.base, num_inference_steps=STEPS, n_max=7, n_min=2, n_avg=2),
    }
    return {name: build() for name, build in editors.items() if name != "flowedit" or family in FlowEdit.capabilities.families}


def _edit(editor, item, k: int = 1) -> None:
    generators = [torch.Generator().manual_seed(s) for s in range(k)]
    editor.edit_batch([item.image] * k, targets=[item.target] * k, sources=[item.source] * k, generators=generators)


@pytest.mark.parametrize(("family", "method"), [(f, m) for f in FAMILIES for m in METHODS if m != "flowedit" or f in FlowEdit.capabilities.families])
def test_no_call_inside_a_denoising_loop_waits_for_the_device(tiny_family, item, monkeypatch, family: str, method: str) -> None:
    editor = _editors(tiny_family(family), family)[method]
    _edit(editor, item)  # first runs fill the schedulers' memos
    syncs = HostSyncs()
    with inside_denoising_loops(monkeypatch, *watch_syncs(syncs)) as loops, syncs:
        _edit(editor, item, k=2 if method == "instdiffedit" else 1)
    assert loops[0] == (1 if method in ("sdedit", "flowedit") else 2)
    assert syncs.calls == [], sorted(set(syncs.calls))


def test_the_watch_catches_a_sync_inside_a_loop(tiny, item, monkeypatch) -> None:
    editor = _editors(tiny, "sd")["sdedit"]
    scheduler = editor.backbone.schedule.scheduler
    real_step = scheduler.step
    monkeypatch.setattr(scheduler, "step", lambda eps, t, x: (eps.sum().item(), real_step(eps, t, x))[1])
    syncs = HostSyncs()
    with inside_denoising_loops(monkeypatch, *watch_syncs(syncs)), syncs:
        _edit(editor, item)
    assert syncs.calls == ["item"] * (STEPS // 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fast_path", ["eager", "graphs"])
@pytest.mark.parametrize("family", FAMILIES)
def test_no_denoising_loop_synchronises_on_cuda(_private_cache, item, monkeypatch, family: str, fast_path: str) -> None:
    if family == "sd":
        pipes = tiny_pipelines(_private_cache, device="cuda", fast_path=fast_path)
    else:
        pipes = tiny_family_pipelines(family, _private_cache, device="cuda", fast_path=fast_path)
    arm, disarm = (lambda _: torch.cuda.set_sync_debug_mode("error")), (lambda: torch.cuda.set_sync_debug_mode(0))
    for name, editor in _editors(pipes, family).items():
        _edit(editor, item)  # warm: graphs captured (a capture synchronises), memos filled
        with inside_denoising_loops(monkeypatch, arm, disarm):
            _edit(editor, item, k=2 if name == "instdiffedit" else 1)
