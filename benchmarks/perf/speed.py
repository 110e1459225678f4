"""The speed benchmark: every method at paper settings, in one process on one device.

    python -m benchmarks.perf.speed --out docs/speed                 # SD 1.4 architecture, random weights
    python -m benchmarks.perf.speed --modes eager,graphs --methods instdiffedit,diffedit
    python -m benchmarks.perf.speed --base /path/sd-v1-4 --inpaint /path/sd-inpainting   # real weights
    python -m benchmarks.perf.speed --arch sd14 --quick --modes eager,graphs --check     # GPU self-check, ~1 min
    python -m benchmarks.perf.speed --arch tiny --quick --device cpu  # the plumbing, on a CPU, in seconds

For each mode and method it reports seconds per edit (median over ``--repeats`` edits,
device-synchronised at phase boundaries), split into mask / edit / inpaint; the first edit's
seconds (``warmup_seconds``: CUDA graph captures or compilation of the new shapes; for the
compiled mode also from a warm compile cache, in a second process); host syncs per edit
(CUDA's sync debug mode); UNet image-evaluations per edit; the **UNet floor**: the same UNet
calls (same shapes, attention processors and mode) replayed alone, our overhead over it and the
seconds as a multiple of it; peak device memory; and, for every mode but eager, the IoU of each
method's mask and the mean difference of its image with eager's for the same seed. Writes
``speed.json``, ``speed.csv`` and ``speed.md`` (the README's table) into ``--out``.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy
import torch

from benchmarks.devices import resolve_device
from benchmarks.methods import BY_NAME, METHODS, editor_class, method_config
from benchmarks.models.loading import Pipelines, load_pretrained
from instdiffedit.acceleration import accelerate, reset
from instdiffedit.graphs import DEFAULT_FAST_PATH, resolve_fast_path, unet_runner

TIMED = tuple(method.name for method in METHODS if method.role in ("method", "baseline"))
"""What an edit costs is timed for InstDiffEdit and its baselines (:mod:`benchmarks.methods`), each as its config builds it."""
DEFAULT_METHODS = "instdiffedit,diffedit,sdedit,diffedit_ddim,ledits_pp,instdiffedit@4"
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
    unet_evals: int = 0
    floor_seconds: float = math.nan
    floor_ratio: float = math.nan  # seconds / floor_seconds
    overhead: float = math.nan  # seconds / floor_seconds - 1
    ratio: float = math.nan  # seconds / InstDiffEdit's seconds in the same mode
    peak_memory_gb: float = math.nan
    mask_coverage: float = math.nan  # share of the image the mask covers
    mask_iou_vs_eager: float = math.nan
    image_diff_vs_eager: float = math.nan  # mean |difference| with eager's image, 0..255 levels
    status: str = "ok"
    error: str = ""
    times: list[float] = field(default_factory=list)


# -- building -------------------------------------------------------------------------------


def build_pipelines(arch: str, device: torch.device, dtype: torch.dtype, base: str | None, inpaint: str | None) -> Pipelines:
    if base is not None:
        return load_pretrained(base, inpaint, device=str(device), dtype={torch.float16: "float16", torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])
    if arch == "tiny":
        from benchmarks.models.tiny import build_tiny_pipelines

        pipes = Pipelines(*build_tiny_pipelines())
        for pipe in (pipes.base, pipes.inpaint):
            pipe.to(device, dtype)
        return pipes
    from benchmarks.models.sd_architecture import build_sd14_pipelines

    return build_sd14_pipelines(device, dtype)


def build_editor(method: str, pipes: Pipelines, quick: bool) -> Any:
    """The editor ``run.py method=<method>`` builds: from ``conf/method/<method>.yaml`` (composed by
    Hydra, with the method's ``--quick`` overrides when ``quick``), on these pipelines."""
    from hydra.utils import instantiate

    return instantiate(method_config(method, BY_NAME[method].quick if quick else ()))(pipes.base, pipes.inpaint)


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
    unets = [pipes.base.unet, pipes.inpaint.unet]
    vaes = list(dict.fromkeys([pipes.base.vae, pipes.inpaint.vae]))
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
    for unet in (pipes.base.unet, pipes.inpaint.unet):
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


@contextmanager
def recording(*unets: torch.nn.Module) -> Iterator[list[Callable[[], object]]]:
    """Every UNet call of the given UNets, as a thunk that makes the same call again: same shapes
    and timestep, same attention processors, same fast path (calls through the UNets' runners
    are replayed through them; direct calls, from diffusers pipelines, directly)."""
    calls: list[Callable[[], object]] = []

    def through(runner):
        def listener(*call):
            inputs, processors = tuple(tensor.clone() for tensor in call), runner.processors()
            calls.append(lambda: (runner.processors() == processors or runner.set_processors(processors), runner(*inputs)))
        return listener

    def direct(module, args, kwargs):
        args, kwargs = tuple(_stand_in(a) for a in args), {k: _stand_in(v) for k, v in kwargs.items()}
        calls.append(lambda: module(*args, **kwargs))

    handles = []
    for unet in dict.fromkeys(unets):
        handles += [unet_runner(unet).listen(through(unet_runner(unet))), unet.register_forward_pre_hook(direct, with_kwargs=True)]
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


@torch.no_grad()
def replay(calls: list[Callable[[], object]], unets: list[torch.nn.Module], clock: Clock) -> float:
    """Seconds to make the recorded calls again; the UNets' processors are put back after.

    Replayed capture processors write into their store's current buffer, that of the row's own
    shapes (its last edit's), where nobody reads them.
    """
    runners = [unet_runner(unet) for unet in dict.fromkeys(unets)]
    processors = [runner.processors() for runner in runners]
    try:
        clock.sync()
        start = time.perf_counter()
        for call in calls:
            call()
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


def time_method(
    method: str, batch: int, mode: str, pipes: Pipelines, image, texts: tuple[str, str], args: argparse.Namespace,
    clock: Clock, eager: dict[str, Any],
) -> Row:
    row = Row(method=f"{method}@{batch}" if batch > 1 else method, mode=mode, batch=batch)
    release_graphs(pipes, clock.device)
    editor = build_editor(method, pipes, args.quick)
    source, target = texts
    repeats = args.diffedit_repeats if method == "diffedit" else args.repeats

    def edit(seed: int):
        generators = [torch.Generator("cpu").manual_seed(seed + k) for k in range(batch)]
        if batch == 1:
            return [editor.edit(image, target=target, source=source, generator=generators[0])]
        return editor.edit_batch([image] * batch, targets=[target] * batch, sources=[source] * batch, generators=generators)

    for w in range(max(args.warmup, 1)):
        started = time.perf_counter()
        edit(1000 + w)
        seconds = time.perf_counter() - started
        if w == 0:
            row.warmup_seconds = seconds
        log(f"    warm-up {w + 1}: {seconds:.2f} s")
    if args.warmup_only:
        return row
    unets = [pipes.base.unet, pipes.inpaint.unet]
    with recording(*unets) as calls, counting_syncs(clock.device) as syncs:  # a warm edit, untimed
        edit(2000)
    row.syncs_per_edit = syncs[0] / batch
    clock.reset_peak()
    results = []
    for _ in range(repeats):
        results.append(edit(args.seed)[0])
        row.times.append(results[-1].timings["total"])
    row.peak_memory_gb = clock.peak_gb()
    row.repeats = repeats
    for phase in ("mask", "edit", "inpaint"):
        setattr(row, f"seconds_{phase}", statistics.median(r.timings.get(phase, 0.0) for r in results))
    row.seconds = statistics.median(row.times)
    row.unet_evals = results[0].unet_evals
    if args.floor_repeats:
        floors = [replay(calls, unets, clock) for _ in range(args.floor_repeats + 1)][1:]  # the first replay warms up
        row.floor_seconds = statistics.median(floors) / batch
        row.floor_ratio = row.seconds / row.floor_seconds
        row.overhead = row.floor_ratio - 1
    compare_with_eager(row, results[0], eager)
    return row


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


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = (
        f"Device: {meta['device_name']}, {meta['dtype']}, {meta['resolution']} px, torch {meta['torch']}, "
        f"diffusers {meta['diffusers']}; {meta['weights']}. A plain run uses the `{meta['default_mode']}` mode. "
        "Seconds per image: median of the repeats after warm-up; warm-up: the first edit or batch (captures, "
        "compilation; in parentheses from a warm compile cache, in a second process). Floor: the same "
        "UNet calls alone, same mode. Peak GB: memory reserved on the device (CUDA graphs' pools included). "
        f"Generated by `{meta['command']}`.\n\n"
    )
    lines = [
        (
            "| method | mode | s / image | warm-up s | mask | edit | inpaint | x InstDiffEdit | UNet evals | UNet floor (s) "
            "| x floor | overhead | syncs / edit | peak GB | mask IoU vs eager | image diff vs eager |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v, spec: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)
    for r in rows:
        if r.status != "ok":
            lines.append(f"| {r.method} | {r.mode} | {r.status}: {r.error[:80]} |" + " |" * 14)
            continue
        warmup = fmt(r.warmup_seconds, ".1f") + ("" if math.isnan(r.warmup_seconds_warm_cache) else f" ({r.warmup_seconds_warm_cache:.1f})")
        lines.append(
            f"| {r.method} | {r.mode} | {fmt(r.seconds, '.3f')} | {warmup} | {fmt(r.seconds_mask, '.3f')} "
            f"| {fmt(r.seconds_edit, '.3f')} | {fmt(r.seconds_inpaint, '.3f')} | {fmt(r.ratio, '.2f')} | {r.unet_evals} "
            f"| {fmt(r.floor_seconds, '.3f')} | {fmt(r.floor_ratio, '.2f')} | {fmt(100 * r.overhead, '+.1f')} % "
            f"| {fmt(r.syncs_per_edit, '.0f')} | {fmt(r.peak_memory_gb, '.2f')} | {fmt(r.mask_iou_vs_eager, '.3f')} "
            f"| {fmt(r.image_diff_vs_eager, '.2f')} |"
        )
    return head + "\n".join(lines) + "\n"


def write_outputs(rows: list[Row], meta: dict[str, Any], out: Path, readme: Path | None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    records = [asdict(r) for r in rows]
    (out / "speed.json").write_text(json.dumps({"meta": meta, "rows": records}, indent=2, default=str))
    with open(out / "speed.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in records[0] if k != "times"])
        writer.writeheader()
        writer.writerows({k: v for k, v in rec.items() if k != "times"} for rec in records)
    table = markdown(rows, meta)
    (out / "speed.md").write_text(table)
    if readme is not None:
        update_readme(readme, table)
    return table


BEGIN, END = "<!-- speed-table:begin -->", "<!-- speed-table:end -->"


def update_readme(readme: Path, table: str) -> None:
    """Replace the README's text between the speed-table markers with ``table``."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: {readme} has no {BEGIN} ... {END} markers to put the table between.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


# -- the command ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("sd14", "tiny"), default="sd14", help="random-weight architecture (ignored with --base)")
    parser.add_argument("--base", help="a real base pipeline (hub id or folder) instead of random weights")
    parser.add_argument("--inpaint", help="a real inpainting pipeline (with --base)")
    parser.add_argument("--methods", help=f"comma-separated, from {', '.join(TIMED)}; instdiffedit@K: K items per batch (default {DEFAULT_METHODS}; with --check {CHECK_METHODS})")
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
    parser.add_argument("--warmup-only", action="store_true", help="time the first edit only (the warm-cache run)")
    parser.add_argument("--check", action="store_true", help="verify, don't time: one edit per method and mode against eager's; exit 1 on a mismatch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32", "auto"), default="auto", help="auto: float16 on CUDA, float32 elsewhere")
    parser.add_argument("--quick", action="store_true", help="few steps (tests of the plumbing; not paper settings)")
    parser.add_argument("--out", type=Path, default=Path("outputs/speed"))
    parser.add_argument("--readme", type=Path, help="also put the table between the speed-table markers of this file")
    args = parser.parse_args(argv)
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
    device = resolve_device(args.device)
    dtype = {"auto": torch.float16 if device.type == "cuda" else torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    methods = [parse_method(m) for m in args.methods.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        parse_mode(mode)
    warm_cache_modes = {m for m in args.warm_cache_modes.split(",") if m}
    if any(parse_mode(m)[0] == "compiled" for m in modes):
        # Set before anything compiles; the warm-cache run inherits it.
        args.inductor_cache = args.inductor_cache or tempfile.mkdtemp(prefix="instdiffedit-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(args.inductor_cache)
    clock = Clock(device)
    started = time.perf_counter()
    log(f"Building {'weights from ' + args.base if args.base else args.arch + ' (random weights)'} on {device}, {dtype} ...")
    pipes = build_pipelines(args.arch, device, dtype, args.base, args.inpaint)
    image, texts = benchmark_input(pipes)
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
                elapsed = time.perf_counter() - started
                if elapsed > args.budget_s:
                    rows.append(Row(method=label, mode=mode, batch=batch, status="skipped", error=f"time budget ({args.budget_s:.0f} s) spent"))
                    log(f"[{elapsed:6.0f} s] {mode} / {label}: skipped, time budget spent")
                    continue
                log(f"[{elapsed:6.0f} s] {mode} / {label}")
                try:
                    row = time_method(method, batch, mode, pipes, image, texts, args, clock, eager)
                except Exception as error:  # one method's failure must not lose the others' numbers
                    row = Row(method=label, mode=mode, batch=batch, status="failed", error=f"{type(error).__name__}: {error}")
                    log(f"    FAILED: {row.error}")
                else:
                    log(
                        f"    {row.seconds:.3f} s per image (floor {row.floor_seconds:.3f} s, {100 * row.overhead:+.1f} %), "
                        f"warm-up {row.warmup_seconds:.2f} s, {row.syncs_per_edit:.0f} syncs, {row.unet_evals} UNet evals, "
                        f"peak {row.peak_memory_gb:.2f} GB"
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
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    table = write_outputs(rows, meta, args.out, args.readme)
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
    """One synthetic item at the model's resolution: a red circle to turn into a blue square."""
    from benchmarks.data.synthetic import SyntheticDataset

    side = pipes.base.unet.config.sample_size * pipes.base.vae_scale_factor
    item = SyntheticDataset(n=1, size=side, seed=0).load("synthetic-00000")
    return item.image, (item.source, item.target)


def describe(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, pipes: Pipelines, argv: list[str] | None) -> dict[str, Any]:
    import diffusers

    return {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "dtype": str(dtype).removeprefix("torch."),
        "resolution": pipes.base.unet.config.sample_size * pipes.base.vae_scale_factor,
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
