"""The speed benchmark: every method at paper settings, in one process on one device.

    python -m benchmarks.perf.speed --out docs/speed                 # SD 1.4 architecture, random weights
    python -m benchmarks.perf.speed --modes eager,graphs --methods instdiffedit,diffedit
    python -m benchmarks.perf.speed --base /path/sd-v1-4 --inpaint /path/sd-inpainting   # real weights
    python -m benchmarks.perf.speed --arch sd14 --quick --modes eager,graphs --check     # GPU self-check, ~1 min
    python -m benchmarks.perf.speed --arch tiny --quick --device cpu  # the plumbing, on a CPU, in seconds
    python -m benchmarks.perf.speed --arch flux_dev --modes graphs --short-warmup --out docs/speed/flux_dev --doc docs/speed.md
    python -m benchmarks.perf.speed --arch tiny_flux --quick --device cpu   # the same on FLUX.1's tiny model
    python -m benchmarks.perf.speed --backbone-table docs/speed --doc docs/speed.md  # the guide's table from runs made elsewhere

``--arch``: ``sd14`` (Stable Diffusion 1.4, the paper's model), ``sdxl``, ``sd35_medium`` and
``flux_dev`` (full size, :mod:`benchmarks.models.family_architectures`; fp16 for SDXL, bf16 for
the others, at 1024 px), all with random weights, which cost what real ones do; ``tiny`` and
``tiny_sdxl``, ``tiny_sd3``, ``tiny_flux`` are the tiny models of the tests. On SD 1.x the
default methods are InstDiffEdit, its baselines and the throughput mode; on the other families
every method of :mod:`benchmarks.methods` that runs on the family.

For each mode and method it reports seconds per edit (median over ``--repeats`` edits,
timed by CUDA events at phase boundaries; each made by a newly built editor, so that it encodes
its prompts as an item of a run does), split into mask / edit / inpaint; the first edit's
seconds (``warmup_seconds``: CUDA graph captures or compilation of the new shapes; for the
compiled mode also from a warm compile cache, in a second process; with ``--short-warmup`` the
first edit runs a step or two of each loop, see :mod:`benchmarks.methods`); host syncs per edit
(CUDA's sync debug mode, in an untimed edit before the timed ones); denoiser image-evaluations per edit; the
**floor**: the edit's denoiser calls (recorded in that untimed edit: same shapes, attention
processors and mode) replayed alone, our overhead over it and the seconds as a multiple of it;
the **backbone floor**: the same calls with the model's own attention processors, which leaves
out the attention capture (InstDiffEdit's overhead over it is its whole cost over the bare
model; equal to the floor for methods that capture nothing); peak device memory; and, for every
mode but eager, the IoU of each method's mask and the mean difference of its image with
eager's for the same seed. Writes ``speed.json``, ``speed.csv`` and ``speed.md`` into ``--out``
after every row, so a run cut short keeps what it measured; ``--doc`` puts the SD 1.x table
(or, for the other families, the table of every family's run beside ``--out``) into a guide
(``docs/speed.md``).

Modes are the UNet fast paths (``model.fast_path``, :mod:`instdiffedit.graphs`): ``eager``,
``graphs`` (CUDA graphs; what a plain run uses on CUDA), ``compiled`` (inductor kernels under
the same graphs); any of them with ``+cl`` adds ``channels_last``. Methods run inside
diffusers pipelines (DiffEdit-DDIM, LEDITS++) are eager in every mode. ``instdiffedit@K`` is
InstDiffEdit in the runner's throughput mode: K items per UNet call (seconds per image =
batch seconds / K).

``--check`` verifies instead of timing: one edit per method and mode, each fast mode's masks
and images against eager's for the same seed; the exit status is 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy
import torch

from benchmarks.devices import resolve_device
from benchmarks.methods import BY_NAME, METHODS, editor_class, method_config
from benchmarks.models.family_architectures import ARCHITECTURES
from benchmarks.models.loading import Pipelines, load_pretrained
from benchmarks.perf.doc_sections import replace_section
from instdiffedit.acceleration import accelerate, reset
from instdiffedit.backbones import BACKBONE_FAMILIES, backbone_for, denoiser_of, family_of
from instdiffedit.graphs import (
    DEFAULT_FAST_PATH,
    UNetRunner,
    resolve_fast_path,
    unet_runner,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
TIMED = tuple(method.name for method in METHODS)
"""Every method of :mod:`benchmarks.methods` can be timed, each as its config builds it."""
DEFAULT_METHODS = "instdiffedit,diffedit,sdedit,diffedit_ddim,ledits_pp,instdiffedit@8"  # on SD 1.x; @8: the runner's default batch
TINY_FAMILIES = {"tiny_sdxl": "sdxl", "tiny_sd3": "sd3", "tiny_flux": "flux", "tiny_kontext": "flux_kontext", "tiny_qwen_image_edit": "qwen_image_edit"}
ARCH_FAMILIES = {"sd14": "sd", "tiny": "sd", **TINY_FAMILIES, **{name: arch.family for name, arch in ARCHITECTURES.items()}}
"""Every ``--arch`` and its model family."""
BACKBONE_ARCHS = (*ARCHITECTURES, *TINY_FAMILIES)
"""The archs of the backbone table (their runs' folders side by side), in its order."""
CHECK_METHODS = "instdiffedit,diffedit,sdedit,instdiffedit@2"  # --check: the methods on the fast paths
MODES = ("eager", "graphs", "compiled")
DEFAULT_MODES = "eager,graphs,compiled"
# Each new (UNet, shape, processors) costs a compilation (about a minute for SD 1.4's UNet), so
# by default only InstDiffEdit runs compiled; --compile-methods adds the others.
DEFAULT_COMPILE_METHODS = "instdiffedit"
PAPER_A30 = {"instdiffedit": 10.8, "diffedit": 64.0}  # seconds per image in the paper (A30)
CHECK_MIN_MASK_IOU = 0.98  # --check: a fast mode's mask against eager's, same seed
CHECK_MAX_IMAGE_DIFF = 2.0  # --check: mean |difference| of the images, in 0..255 levels


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Row:
    """One (method, mode) result; seconds are per image, but for the warm-ups: the first call's."""

    method: str
    mode: str
    batch: int = 1
    repeats: int = 0
    seconds: float = math.nan
    warmup_seconds: float = math.nan  # the first edit (batch): captures or compilation of the new shapes
    warmup_seconds_warm_cache: float = math.nan  # the same in a second process, compile cache warm
    seconds_mask: float = math.nan
    seconds_edit: float = math.nan
    seconds_inpaint: float = math.nan
    syncs_per_edit: float = math.nan  # host syncs (CUDA's sync debug mode) in one warm edit
    unet_evals: int = 0  # denoiser image-evaluations (UNet or transformer)
    floor_seconds: float = math.nan  # the edit's denoiser calls replayed alone, attention capture included
    floor_ratio: float = math.nan  # seconds / floor_seconds
    overhead: float = math.nan  # seconds / floor_seconds - 1
    backbone_floor_seconds: float = math.nan  # the same calls with the model's own attention processors
    backbone_overhead: float = math.nan  # seconds / backbone_floor_seconds - 1
    ratio: float = math.nan  # seconds / InstDiffEdit's seconds in the same mode
    peak_memory_gb: float = math.nan
    mask_coverage: float = math.nan  # share of the image the mask covers
    mask_iou_vs_eager: float = math.nan
    image_diff_vs_eager: float = math.nan  # mean |difference| with eager's image, 0..255 levels
    status: str = "ok"
    error: str = ""
    note: str = ""  # what was left out of an ok row, and why
    times: list[float] = field(default_factory=list)

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


# -- building -------------------------------------------------------------------------------


def build_pipelines(arch: str, device: torch.device, dtype: torch.dtype, base: str | None, inpaint: str | None) -> Pipelines:
    if base is not None:
        return load_pretrained(base, inpaint, device=str(device), dtype={torch.float16: "float16", torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch].build(device, dtype, 0)
    if arch in TINY_FAMILIES:
        from benchmarks.models.families import finish_pipeline
        from benchmarks.models.tiny_families import tiny_family_pipelines

        pipes = tiny_family_pipelines(TINY_FAMILIES[arch], device=str(device), fast_path="eager")
        for pipe in denoised_pipelines(pipes):
            finish_pipeline(pipe.to(device, dtype), dtype, pipes.resolution)
        return pipes
    if arch == "tiny":
        from benchmarks.models.tiny import build_tiny_pipelines

        pipes = Pipelines(*build_tiny_pipelines())
        for pipe in (pipes.base, pipes.inpaint):
            pipe.to(device, dtype)
        return pipes
    from benchmarks.models.sd_architecture import build_sd14_pipelines

    return build_sd14_pipelines(device, dtype)


def denoised_pipelines(pipes: Pipelines) -> list:
    """The base pipeline and the inpainting twin, where there is one."""
    return [pipe for pipe in (pipes.base, pipes.inpaint) if pipe is not None]


def denoisers(pipes: Pipelines) -> list[torch.nn.Module]:
    """The pipelines' UNets or transformers, each once."""
    return list(dict.fromkeys(denoiser_of(pipe) for pipe in denoised_pipelines(pipes)))


def build_editor(method: str, pipes: Pipelines, quick: bool, warmup: bool = False) -> Any:
    """The editor ``run.py method=<method>`` builds, on these pipelines; with the method's
    ``--quick`` overrides when ``quick``, and its short-warm-up ones when ``warmup``."""
    from hydra.utils import instantiate

    entry = BY_NAME[method]
    overrides = (*(entry.quick if quick else ()), *(entry.warmup if warmup else ()))
    return instantiate(method_config(method, overrides))(pipes.base, pipes.inpaint)


def methods_for(family: str) -> list[str]:
    """Every method of :mod:`benchmarks.methods` (in its order) that has a config and whose class
    runs on ``family`` (its declared ``capabilities.families``)."""
    return [
        method.name for method in METHODS
        if (CONF / "method" / f"{method.name}.yaml").is_file() and family in editor_class(method.name).capabilities.families
    ]


def parse_method(spec: str) -> tuple[str, int]:
    """``instdiffedit@4`` -> ("instdiffedit", 4)."""
    name, _, batch = spec.partition("@")
    if name not in TIMED:
        raise SystemExit(f"error: unknown method {name!r}; choose from {', '.join(TIMED)} (optionally @K for K items per batch).")
    if batch and name != "instdiffedit":
        raise SystemExit(f"error: only instdiffedit has a batched (throughput) mode, got {spec!r}.")
    return name, int(batch or 1)


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
        unet_runner(unet).clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- measuring ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Call:
    """One recorded denoiser call, to be made again: through its runner (same shapes and timestep,
    same fast path, the attention processors it had or others) or, for calls made inside a
    diffusers pipeline, directly."""

    module: torch.nn.Module
    inputs: tuple[Any, ...]
    kwargs: dict[str, Any]
    runner: UNetRunner | None = None
    processors: tuple[object, ...] = ()

    def key(self, plain: dict[UNetRunner, tuple[object, ...]] | None = None) -> tuple:
        """What a CUDA graph is captured for: the runner, the inputs' shapes and the processors."""
        shapes = tuple((t.shape, t.dtype) if isinstance(t, torch.Tensor) else t for t in self.inputs)
        return id(self.runner), id(self.module), shapes, tuple(map(id, self.processors_for(plain)))

    def processors_for(self, plain: dict[UNetRunner, tuple[object, ...]] | None) -> tuple[object, ...]:
        """The processors to replay with: the recorded ones, or the runner's entry in ``plain``."""
        return self.processors if plain is None or self.runner is None else plain[self.runner]

    def __call__(self, plain: dict[UNetRunner, tuple[object, ...]] | None = None) -> object:
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
        runner = unet_runner(unet)
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


def plain_processors(unets: list[torch.nn.Module]) -> dict[UNetRunner, tuple[object, ...]]:
    """Each denoiser's own attention processors (those it has outside an attention capture)."""
    return {unet_runner(unet): unet_runner(unet).processors() for unet in unets}


def captures(calls: list[Call], plain: dict[UNetRunner, tuple[object, ...]]) -> bool:
    """Whether any call ran with other processors than the model's own (an attention capture)."""
    return any(call.runner is not None and call.processors != plain[call.runner] for call in calls)


@torch.no_grad()
def replay(calls: list[Call], unets: list[torch.nn.Module], clock: Clock, plain: dict[UNetRunner, tuple[object, ...]] | None = None) -> float:
    """Seconds to make the recorded calls again (with each model's ``plain`` processors, if given);
    the denoisers' processors are put back after.

    Each distinct call is made once first, untimed: a graph for a signature the edit never made
    (the plain processors at a capture's shapes) is captured then, and nothing else is cold.
    Replayed capture processors write into their store's current buffer, that of the row's own
    shapes (its last edit's), where nobody reads them.
    """
    runners = [unet_runner(unet) for unet in dict.fromkeys(unets)]
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


@contextmanager
def counting_syncs(device: torch.device) -> Iterator[list[float]]:
    """Counts the host syncs in the block (CUDA's sync debug mode, "warn"); NaN off CUDA."""
    count = [math.nan]
    if device.type != "cuda":
        yield count
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield count
        finally:
            torch.cuda.set_sync_debug_mode(0)
    count[0] = sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


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


def time_method(
    method: str, batch: int, mode: str, pipes: Pipelines, item, args: argparse.Namespace,
    clock: Clock, eager: dict[str, Any], budget: Budget,
) -> Row:
    row = Row(method=f"{method}@{batch}" if batch > 1 else method, mode=mode, batch=batch)
    release_graphs(pipes, clock.device)
    repeats = args.diffedit_repeats if method == "diffedit" else args.repeats

    def edit(seed: int, warmup: bool = False):
        # A new editor each time: its backbone encodes the prompts again, as for a new item of a run.
        editor = build_editor(method, pipes, args.quick, warmup=warmup)
        mask = item.gt_mask if editor.capabilities.needs_ground_truth_mask else None
        generators = [torch.Generator("cpu").manual_seed(seed + k) for k in range(batch)]
        if batch == 1:
            return [editor.edit(item.image, target=item.target, source=item.source, mask=mask, generator=generators[0])]
        return editor.edit_batch(
            [item.image] * batch, targets=[item.target] * batch, sources=[item.source] * batch, masks=[mask] * batch, generators=generators,
        )

    for w in range(max(args.warmup, 1)):
        started = time.perf_counter()
        edit(1000 + w, warmup=args.short_warmup)
        seconds = time.perf_counter() - started
        if w == 0:
            row.warmup_seconds = seconds
        log(f"    warm-up {w + 1}: {seconds:.2f} s")
    if args.warmup_only:
        return row
    unets = denoisers(pipes)
    plain = plain_processors(unets)
    clock.reset_peak()
    # An untimed edit records its denoiser calls (a copy of each call's inputs) and counts host
    # syncs (CUDA's sync debug mode); the timed edits that follow do neither.
    with recording(*unets) as calls, counting_syncs(clock.device) as syncs:
        reference = edit(args.seed)[0]
    row.syncs_per_edit = syncs[0] / batch
    results = [edit(args.seed)[0]]
    while len(results) < repeats and budget.fits(results[0].timings["total"] * batch):
        results.append(edit(args.seed)[0])
    if len(results) < repeats:
        row.add_note(f"{len(results)} of {repeats} timed edits (time budget)")
    row.times = [r.timings["total"] for r in results]
    row.peak_memory_gb = clock.peak_gb()
    row.repeats = len(results)
    for phase in ("mask", "edit", "inpaint"):
        setattr(row, f"seconds_{phase}", statistics.median(r.timings.get(phase, 0.0) for r in results))
    row.seconds = statistics.median(row.times)
    row.unet_evals = reference.unet_evals
    measure_floors(row, calls, unets, plain, clock, args.floor_repeats, budget)
    compare_with_eager(row, reference, eager)
    return row


def measure_floors(
    row: Row, calls: list[Call], unets: list[torch.nn.Module], plain: dict[UNetRunner, tuple[object, ...]], clock: Clock,
    repeats: int, budget: Budget,
) -> None:
    """The row's floor and backbone floor (medians of ``repeats`` replays), if they fit the budget."""
    if not repeats:
        return
    capture = captures(calls, plain)
    expected = repeats * row.seconds * row.batch * (2 if capture else 1)  # a replay costs at most the edit
    if not budget.fits(expected):
        row.add_note(f"no floor: its replays (~{expected:.0f} s) would overrun the time budget")
        return
    floors = [replay(calls, unets, clock) for _ in range(repeats)]
    row.floor_seconds = statistics.median(floors) / row.batch
    row.floor_ratio = row.seconds / row.floor_seconds
    row.overhead = row.floor_ratio - 1
    row.backbone_floor_seconds = row.floor_seconds
    if capture:
        row.backbone_floor_seconds = statistics.median(replay(calls, unets, clock, plain) for _ in range(repeats)) / row.batch
    row.backbone_overhead = row.seconds / row.backbone_floor_seconds - 1


def compare_with_eager(row: Row, result, eager: dict[str, Any]) -> None:
    """Eager's mask and image for the same seed are kept; other modes' are compared with them."""
    pixels = numpy.asarray(result.image, dtype=numpy.float32)
    if result.mask is not None:
        row.mask_coverage = result.mask.float().mean().item()
    if parse_mode(row.mode)[0] == "eager" and not parse_mode(row.mode)[1]:
        eager[row.method] = (result.mask, pixels)
        return
    if row.method not in eager:
        return
    mask, image = eager[row.method]
    row.image_diff_vs_eager = float(numpy.abs(pixels - image).mean())
    if result.mask is not None and mask is not None:
        row.mask_iou_vs_eager = _iou(result.mask, mask)


def warm_cache_warmup(row: Row, args: argparse.Namespace) -> float:
    """The row's first-edit seconds in a second process sharing this one's compile cache."""
    with tempfile.TemporaryDirectory(prefix="instdiffedit-warm-cache-") as out:
        command = [
            sys.executable, "-m", "benchmarks.perf.speed", "--methods", row.method, "--modes", row.mode, "--warmup-only",
            "--warm-cache-modes", "", "--out", out, "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed),
            "--compile-methods", args.compile_methods, *(["--inductor-cache", str(args.inductor_cache)] if args.inductor_cache else []),
            *(["--short-warmup"] if args.short_warmup else []),
        ]
        command += ["--base", args.base, *(["--inpaint", args.inpaint] if args.inpaint else [])] if args.base else ["--arch", args.arch]
        command += ["--quick"] if args.quick else []
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.warm_cache_timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the warm-cache run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        (probe,) = json.loads((Path(out) / "speed.json").read_text())["rows"]
    return probe["warmup_seconds"]


# -- reporting ------------------------------------------------------------------------------


def add_ratios(rows: list[Row]) -> None:
    reference = {r.mode: r.seconds for r in rows if r.method == "instdiffedit" and r.status == "ok"}
    for r in rows:
        if r.mode in reference and r.status == "ok":
            r.ratio = r.seconds / reference[r.mode]


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = (
        f"Device: {meta['device_name']}, {meta['dtype']}, {meta['resolution']} px, torch {meta['torch']}, "
        f"diffusers {meta['diffusers']}; {meta['weights']}. A plain run uses the `{meta['default_mode']}` mode. "
        "Seconds per image: median of the repeats after warm-up; warm-up: the first edit or batch (captures, "
        "compilation; in parentheses from a warm compile cache, in a second process). Floor: the same "
        "denoiser calls alone, same mode; backbone floor: the same with the model's own attention (no capture). "
        "Peak GB: memory reserved on the device (CUDA graphs' pools included). "
        f"Generated by `{meta['command']}`.\n\n"
    )
    lines = [
        (
            "| method | mode | s / image | warm-up s | mask | edit | inpaint | x InstDiffEdit | denoiser evals | floor (s) "
            "| x floor | overhead | backbone floor (s) | overhead vs backbone | syncs / edit | peak GB | mask IoU vs eager | image diff vs eager |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.status != "ok":
            lines.append(f"| {r.method} | {r.mode} | {r.status}: {r.error[:80]} |" + " |" * 16)
            continue
        warmup = _fmt(r.warmup_seconds, ".1f") + ("" if math.isnan(r.warmup_seconds_warm_cache) else f" ({r.warmup_seconds_warm_cache:.1f})")
        lines.append(
            f"| {r.method} | {r.mode} | {_fmt(r.seconds, '.3f')} | {warmup} | {_fmt(r.seconds_mask, '.3f')} "
            f"| {_fmt(r.seconds_edit, '.3f')} | {_fmt(r.seconds_inpaint, '.3f')} | {_fmt(r.ratio, '.2f')} | {r.unet_evals} "
            f"| {_fmt(r.floor_seconds, '.3f')} | {_fmt(r.floor_ratio, '.2f')} | {_fmt(100 * r.overhead, '+.1f')} % "
            f"| {_fmt(r.backbone_floor_seconds, '.3f')} | {_fmt(100 * r.backbone_overhead, '+.1f')} % "
            f"| {_fmt(r.syncs_per_edit, '.0f')} | {_fmt(r.peak_memory_gb, '.2f')} | {_fmt(r.mask_iou_vs_eager, '.3f')} "
            f"| {_fmt(r.image_diff_vs_eager, '.2f')} |"
        )
    notes = [f"- {r.method} / {r.mode}: {r.note}" for r in rows if r.status == "ok" and r.note]
    return head + "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def backbone_markdown(root: Path) -> str:
    """One table of every backbone's run in ``root/<arch>/speed.json``: each method in the mode a plain run uses."""
    lines = [
        "| model | method | s / edit | mask | inpaint | denoiser evals | backbone floor (s) | overhead vs backbone | attention capture (s) | peak GB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sources = []
    for arch in BACKBONE_ARCHS:
        path = root / arch / "speed.json"
        if not path.is_file():
            continue
        saved = json.loads(path.read_text())
        meta = saved["meta"]
        sources.append(f"`{arch}`: {meta['device_name']}, {meta['dtype']}, {meta['resolution']} px, {meta['date']}, `{meta['command']}`")
        for r in saved["rows"]:
            if r["mode"] != meta["default_mode"]:
                continue
            if r["status"] != "ok":
                lines.append(f"| `{arch}` | {r['method']} | {r['status']}: {r['error'][:60]} |" + " |" * 7)
                continue
            capture = r["floor_seconds"] - r["backbone_floor_seconds"]
            lines.append(
                f"| `{arch}` | {r['method']} | {_fmt(r['seconds'], '.2f')} | {_fmt(r['seconds_mask'], '.2f')} | {_fmt(r['seconds_inpaint'], '.2f')} "
                f"| {r['unet_evals']} | {_fmt(r['backbone_floor_seconds'], '.2f')} | {_fmt(100 * r['backbone_overhead'], '+.1f')} % "
                f"| {_fmt(capture, '.2f')} | {_fmt(r['peak_memory_gb'], '.1f')} |"
            )
    head = (
        "Full-size architectures with random weights (same cost as the real ones), paper settings, one edit at a time, "
        "in the mode a plain run uses. Backbone floor: the edit's denoiser calls replayed alone with the model's own "
        "attention; attention capture: what the same calls cost more with the capture on. From "
        + ("; ".join(sources) if sources else "no run yet") + ".\n\n"
    )
    return head + "\n".join(lines) + "\n"


def write_outputs(rows: list[Row], meta: dict[str, Any], out: Path, doc: Path | None, backbone: bool = False) -> str:
    """Write ``speed.json``, ``speed.csv`` and ``speed.md`` into ``out``; with ``doc``, put the
    table into it: SD 1.x's, or (``backbone``) the table of every backbone's run beside ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    records = [asdict(r) for r in rows]
    (out / "speed.json").write_text(json.dumps({"meta": meta, "rows": records}, indent=2, default=str))
    with open(out / "speed.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in records[0] if k != "times"])
        writer.writeheader()
        writer.writerows({k: v for k, v in rec.items() if k != "times"} for rec in records)
    table = markdown(rows, meta)
    (out / "speed.md").write_text(table)
    if doc is not None and backbone:
        replace_section(doc, BACKBONE_TABLE, backbone_markdown(out.parent))
    elif doc is not None:
        replace_section(doc, TABLE, table)
    return table


TABLE, BACKBONE_TABLE = "speed-table", "speed-backbones"
"""The generated sections of docs/speed.md (:func:`benchmarks.perf.doc_sections.replace_section`): SD 1.x's table and the backbones'."""


# -- the command ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=tuple(ARCH_FAMILIES), default="sd14", help="random-weight architecture (ignored with --base)")
    parser.add_argument("--base", help="a real base pipeline (hub id or folder) instead of random weights")
    parser.add_argument("--inpaint", help="a real inpainting pipeline (with --base)")
    parser.add_argument(
        "--methods",
        help=f"comma-separated, from {', '.join(TIMED)}; instdiffedit@K: K items per batch (default on SD 1.x {DEFAULT_METHODS}, "
        f"with --check {CHECK_METHODS}; on the other families every method that runs on the family)",
    )
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated: {', '.join(MODES)}, each optionally +cl (channels_last)")
    parser.add_argument("--compile-methods", default=DEFAULT_COMPILE_METHODS, help=f"methods timed in the compiled mode (of {', '.join(on_fast_paths())}; instdiffedit covers instdiffedit@K)")
    parser.add_argument("--warm-cache-modes", default="compiled", help="modes whose single-edit InstDiffEdit warm-up is measured again in a second process with this one's compile cache ('' for none)")
    parser.add_argument("--inductor-cache", help="the compile cache folder (TORCHINDUCTOR_CACHE_DIR); default, a fresh temporary one, so the first compilation is cold")
    parser.add_argument("--warm-cache-timeout-s", type=float, default=300)
    parser.add_argument("--budget-s", type=float, default=420, help="start no new measurement after this many seconds (results so far are kept)")
    parser.add_argument("--repeats", type=int, default=3, help="timed edits per method and mode (median)")
    parser.add_argument("--diffedit-repeats", type=int, default=2, help="timed edits of DiffEdit (1000+ UNet evaluations each)")
    parser.add_argument("--floor-repeats", type=int, default=2, help="timed replays of the UNet calls (median); 0: no floor")
    parser.add_argument("--warmup", type=int, default=1, help="untimed edits first (at least one: the first is the warm-up time)")
    parser.add_argument("--short-warmup", action="store_true", help="warm up with a step or two of each loop at the edit's shapes (benchmarks/methods.py), not a full edit")
    parser.add_argument("--warmup-only", action="store_true", help="time the first edit only (the warm-cache run)")
    parser.add_argument("--check", action="store_true", help="verify, don't time: one edit per method and mode against eager's; exit 1 on a mismatch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32", "auto"), default="auto", help="auto: on CUDA the arch's published precision (float16 for SD 1.x and SDXL, bfloat16 for SD 3.5 and FLUX.1), float32 elsewhere")
    parser.add_argument("--quick", action="store_true", help="few steps (tests of the plumbing; not paper settings)")
    parser.add_argument("--out", type=Path, help="the output folder (default outputs/speed, outputs/speed/<arch> for the other families)")
    parser.add_argument(
        "--doc", type=Path,
        help="also put the table into this file: SD 1.x's between the speed-table markers, the other families' (every run in --out's parent) between the speed-backbones markers",
    )
    parser.add_argument(
        "--backbone-table", type=Path, metavar="ROOT",
        help="time nothing: put the table of the backbone runs in ROOT/<arch>/speed.json into --doc (after runs made elsewhere)",
    )
    args = parser.parse_args(argv)
    if args.backbone_table is not None and args.doc is None:
        parser.error("--backbone-table needs --doc, the file to put the table into")
    sd = args.base is not None or ARCH_FAMILIES[args.arch] == "sd"
    args.out = args.out or Path("outputs/speed") / ("" if sd else args.arch)
    if sd:  # elsewhere the default is every method that runs on the family (main)
        args.methods = args.methods or (CHECK_METHODS if args.check else DEFAULT_METHODS)
    if args.check:  # one timed edit, a short floor, eager first as the reference
        args.repeats = args.diffedit_repeats = args.floor_repeats = 1
        args.warm_cache_modes = ""
        if "eager" not in args.modes.split(","):
            args.modes = "eager," + args.modes
    return args


@functools.cache
def on_fast_paths() -> tuple[str, ...]:
    """The timed methods whose denoiser calls go through the shared diffusion steps, so through the
    fast path (``capabilities.fast_paths``); the others run inside diffusers pipelines, eager in every mode."""
    return tuple(name for name in TIMED if editor_class(name).capabilities.fast_paths)


def skip_reason(method: str, mode: str, compile_methods: set[str]) -> str | None:
    fast_path = parse_mode(mode)[0]
    if fast_path == "eager":
        return None
    if method not in on_fast_paths():
        return "runs inside a diffusers pipeline: eager in every mode"
    if fast_path == "compiled" and method not in compile_methods:
        return "not in --compile-methods"
    return None


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.backbone_table is not None:
        replace_section(args.doc, BACKBONE_TABLE, backbone_markdown(args.backbone_table))
        return []
    device = resolve_device(args.device)
    dtype = arch_dtype(args.dtype, args.arch if args.base is None else "sd14", device)
    family = "sd" if args.base is not None else ARCH_FAMILIES[args.arch]
    methods = [parse_method(m) for m in (args.methods or ",".join(methods_for(family))).split(",") if m]
    check_methods_run_on(family, [name for name, _ in methods])
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        parse_mode(mode)
    warm_cache_modes = {m for m in args.warm_cache_modes.split(",") if m}
    if any(parse_mode(m)[0] == "compiled" for m in modes):
        # Set before anything compiles; the warm-cache run inherits it.
        args.inductor_cache = args.inductor_cache or tempfile.mkdtemp(prefix="instdiffedit-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(args.inductor_cache)
    clock = Clock(device)
    budget = Budget(args.budget_s)
    log(f"Building {'weights from ' + args.base if args.base else args.arch + ' (random weights)'} on {device}, {dtype} ...")
    pipes = build_pipelines(args.arch, device, dtype, args.base, args.inpaint)
    log(f"    built in {budget.elapsed:.1f} s")
    item = benchmark_input(pipes)
    meta = describe(args, device, dtype, pipes, argv)
    rows: list[Row] = []
    eager: dict[str, Any] = {}
    compile_methods = {m for m in args.compile_methods.split(",") if m}
    for mode in modes:  # modes in order (eager first by default): every method gets its eager number first
        with mode_applied(pipes, mode):
            for method, batch in methods:
                label = f"{method}@{batch}" if batch > 1 else method
                if why := skip_reason(method, mode, compile_methods):
                    rows.append(Row(method=label, mode=mode, batch=batch, status="skipped", error=why))
                    continue
                if budget.spent():
                    rows.append(Row(method=label, mode=mode, batch=batch, status="skipped", error=f"time budget ({args.budget_s:.0f} s) spent"))
                    log(f"[{budget.elapsed:6.0f} s] {mode} / {label}: skipped, time budget spent")
                    continue
                log(f"[{budget.elapsed:6.0f} s] {mode} / {label}")
                try:
                    row = time_method(method, batch, mode, pipes, item, args, clock, eager, budget)
                except Exception as error:  # one method's failure must not lose the others' numbers
                    row = Row(method=label, mode=mode, batch=batch, status="failed", error=f"{type(error).__name__}: {error}")
                    log(f"    FAILED: {row.error}")
                else:
                    log(
                        f"    {row.seconds:.3f} s per image (floor {row.floor_seconds:.3f} s, {100 * row.overhead:+.1f} %; backbone floor "
                        f"{row.backbone_floor_seconds:.3f} s, {100 * row.backbone_overhead:+.1f} %), warm-up {row.warmup_seconds:.2f} s, "
                        f"{row.syncs_per_edit:.0f} syncs, {row.unet_evals} denoiser evals, peak {row.peak_memory_gb:.2f} GB"
                        + (f"; {row.note}" if row.note else "")
                    )
                    if mode in warm_cache_modes and label == "instdiffedit" and not args.warmup_only:
                        try:
                            row.warmup_seconds_warm_cache = warm_cache_warmup(row, args)
                            log(f"    warm-up from a warm compile cache (second process): {row.warmup_seconds_warm_cache:.2f} s")
                        except (RuntimeError, subprocess.TimeoutExpired) as error:
                            log(f"    warm-cache run failed: {error}")
                rows.append(row)
                add_ratios(rows)
                write_outputs(rows, meta, args.out, None)  # a run cut short keeps what it measured
    add_ratios(rows)
    meta["wall_seconds"] = round(budget.elapsed, 1)
    table = write_outputs(rows, meta, args.out, args.doc, backbone=family != "sd")
    log("\n" + table)
    log(f"Wrote {args.out}/speed.json, speed.csv, speed.md in {meta['wall_seconds']} s.")
    if args.check:
        check(rows)
    return rows


def check(rows: list[Row]) -> None:
    """Print each fast mode's agreement with eager; exit 1 if any row failed or disagrees."""
    failures = [f"{r.mode} / {r.method}: {r.error}" for r in rows if r.status == "failed"]
    for r in rows:
        if r.status != "ok" or r.mode == "eager":
            continue
        mask_ok = math.isnan(r.mask_coverage) or r.mask_iou_vs_eager >= CHECK_MIN_MASK_IOU
        image_ok = r.image_diff_vs_eager <= CHECK_MAX_IMAGE_DIFF
        verdict = "PASS" if mask_ok and image_ok else "FAIL"
        log(f"{verdict} {r.mode} / {r.method}: mask IoU vs eager {r.mask_iou_vs_eager:.3f}, image diff {r.image_diff_vs_eager:.2f} levels, {r.syncs_per_edit:.0f} syncs per edit")
        if verdict == "FAIL":
            failures.append(f"{r.mode} / {r.method} disagrees with eager")
    if failures:
        log("check FAILED: " + "; ".join(failures))
        raise SystemExit(1)
    log(f"check passed (mask IoU >= {CHECK_MIN_MASK_IOU}, mean image difference <= {CHECK_MAX_IMAGE_DIFF} levels)")


def benchmark_input(pipes: Pipelines):
    """One synthetic item at the model's native resolution: a shape to turn into another, with its exact mask (for the oracle)."""
    from benchmarks.data.synthetic import SyntheticDataset

    return SyntheticDataset(n=1, size=resolution(pipes), seed=0).load("synthetic-00000")


def resolution(pipes: Pipelines) -> int:
    """The model's native image side in pixels, as its backbone reads it (the family's own for a model without one)."""
    return pipes.resolution if family_of(pipes.base) not in BACKBONE_FAMILIES else backbone_for(pipes.base).resolution


def arch_dtype(name: str, arch: str, device: torch.device) -> torch.dtype:
    """``auto``: float32 off CUDA; on CUDA the precision the arch's weights are published in (float16 for SD 1.x)."""
    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    return ARCHITECTURES[arch].dtype if arch in ARCHITECTURES else torch.float16


def check_methods_run_on(family: str, methods: list[str]) -> None:
    """Refuse, before any model is built, a method that does not run on the model's family."""
    runs = set(methods_for(family))
    if refused := [m for m in dict.fromkeys(methods) if m not in runs]:
        raise SystemExit(f"error: {', '.join(refused)} do not run on the {family} family; its methods: {', '.join(sorted(runs, key=TIMED.index))}.")


def describe(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, pipes: Pipelines, argv: list[str] | None) -> dict[str, Any]:
    import diffusers

    return {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "dtype": str(dtype).removeprefix("torch."),
        "resolution": resolution(pipes),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "weights": f"weights {args.base} + {args.inpaint}" if args.base else f"{args.arch} architecture, random weights (same cost as real ones)",
        "default_mode": resolve_fast_path(DEFAULT_FAST_PATH, device),
        "inductor_cache": args.inductor_cache,
        "command": "python -m benchmarks.perf.speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "paper_a30_seconds": PAPER_A30,
        "args": {k: str(v) for k, v in vars(args).items()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


if __name__ == "__main__":
    main()
