"""The speed benchmark: every method at paper settings, in one process on one device.

    python -m benchmarks.speed --out docs/speed                 # SD 1.4 architecture, random weights
    python -m benchmarks.speed --modes eager,compile,cudagraphs --methods instdiffedit,diffedit
    python -m benchmarks.speed --base /path/sd-v1-4 --inpaint /path/sd-inpainting   # real weights
    python -m benchmarks.speed --arch tiny --quick --device cpu  # the plumbing, on a CPU, in seconds

For each mode and method it reports seconds per edit (median over ``--repeats`` edits after
``--warmup`` ones, device-synchronised at phase boundaries), split into mask / edit / inpaint;
UNet image-evaluations per edit; the **UNet floor**: the same UNet calls (same shapes, same
mode, plain attention) replayed alone, and our overhead over it; peak device memory; and, for
every mode but eager, the IoU of each method's mask with the eager mask for the same seed.
Writes ``speed.json``, ``speed.csv`` and ``speed.md`` (the README's table) into ``--out``.

Modes: ``eager``; ``compile`` (torch.compile, inductor default); ``cudagraphs`` (compile
mode "reduce-overhead"); ``max-autotune``; any of them with ``+cl`` adds ``channels_last``.
``instdiffedit@K`` is InstDiffEdit in the runner's throughput mode: K items per UNet call
(seconds per image = batch seconds / K).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.models import Pipelines, load_pretrained, resolve_device
from instdiffedit.acceleration import accelerate, reset

METHODS = ("instdiffedit", "diffedit", "sdedit", "diffedit_ddim", "ledits_pp")
DEFAULT_METHODS = "instdiffedit,diffedit,sdedit,diffedit_ddim,ledits_pp,instdiffedit@4"
# Methods whose UNet calls we drive (their processors stay put) can run compiled. DiffEdit-DDIM
# and LEDITS++ run inside diffusers pipelines (LEDITS++ swaps every processor at each call):
# eager only. Each compiled (batch size, processors) pair costs a UNet compilation (tens of
# seconds), so by default only InstDiffEdit is compiled; --compile-methods adds the others.
COMPILABLE = ("instdiffedit", "diffedit", "sdedit")
DEFAULT_COMPILE_METHODS = "instdiffedit"
COMPILE_MODES = {"eager": None, "compile": "default", "cudagraphs": "reduce-overhead", "max-autotune": "max-autotune"}
PAPER_A30 = {"instdiffedit": 10.8, "diffedit": 64.0}  # seconds per image in the paper (A30)
QUICK = {  # --quick: few steps, for tests of the plumbing only (not paper settings)
    "instdiffedit": dict(num_inference_steps=10, inpaint_steps=4),
    "diffedit": dict(num_noises=2, num_inference_steps=10, inpaint_steps=4),
    "sdedit": dict(num_inference_steps=10),
    "diffedit_ddim": dict(num_inference_steps=10, num_maps_per_mask=2),
    "ledits_pp": dict(num_inversion_steps=10),
}


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Row:
    """One (method, mode) result; seconds are per image."""

    method: str
    mode: str
    batch: int = 1
    repeats: int = 0
    seconds: float = math.nan
    seconds_mask: float = math.nan
    seconds_edit: float = math.nan
    seconds_inpaint: float = math.nan
    unet_evals: int = 0
    floor_seconds: float = math.nan
    overhead: float = math.nan  # seconds / floor_seconds - 1
    ratio: float = math.nan  # seconds / InstDiffEdit's seconds in the same mode
    peak_memory_gb: float = math.nan
    mask_coverage: float = math.nan  # share of the image the mask covers
    mask_iou_vs_eager: float = math.nan
    status: str = "ok"
    error: str = ""
    times: list[float] = field(default_factory=list)


# -- building -------------------------------------------------------------------------------


def build_pipelines(arch: str, device: torch.device, dtype: torch.dtype, base: str | None, inpaint: str | None) -> Pipelines:
    if base is not None:
        return load_pretrained(base, inpaint, device=str(device), dtype={torch.float16: "float16", torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])
    if arch == "tiny":
        from benchmarks.tiny_model import build_tiny_pipelines

        pipes = Pipelines(*build_tiny_pipelines())
        for pipe in (pipes.base, pipes.inpaint):
            pipe.to(device, dtype)
        return pipes
    from benchmarks.sd_architecture import build_sd14_pipelines

    return build_sd14_pipelines(device, dtype)


def build_editor(method: str, pipes: Pipelines, quick: bool) -> Any:
    from baselines import DiffEdit, DiffEditDDIM, LeditsPP, SDEdit
    from instdiffedit import InstDiffEdit

    classes = {"instdiffedit": InstDiffEdit, "diffedit": DiffEdit, "sdedit": SDEdit, "diffedit_ddim": DiffEditDDIM, "ledits_pp": LeditsPP}
    return classes[method](pipes.base, pipes.inpaint, **(QUICK[method] if quick else {}))


def parse_method(spec: str) -> tuple[str, int]:
    """``instdiffedit@4`` -> ("instdiffedit", 4)."""
    name, _, batch = spec.partition("@")
    if name not in METHODS:
        raise SystemExit(f"error: unknown method {name!r}; choose from {', '.join(METHODS)} (optionally @K for K items per batch).")
    if batch and name != "instdiffedit":
        raise SystemExit(f"error: only instdiffedit has a batched (throughput) mode, got {spec!r}.")
    return name, int(batch or 1)


def parse_mode(spec: str) -> tuple[str | None, bool]:
    """``compile+cl`` -> ("default", True)."""
    base, _, suffix = spec.partition("+")
    if base not in COMPILE_MODES or suffix not in ("", "cl"):
        raise SystemExit(f"error: unknown mode {spec!r}; choose from {', '.join(COMPILE_MODES)}, each optionally with +cl (channels_last).")
    return COMPILE_MODES[base], suffix == "cl"


@contextmanager
def mode_applied(pipes: Pipelines, spec: str) -> Iterator[None]:
    compile_mode, channels_last = parse_mode(spec)
    unets = [pipes.base.unet, pipes.inpaint.unet]
    vaes = list(dict.fromkeys([pipes.base.vae, pipes.inpaint.vae]))
    for unet in unets:
        accelerate(unet, compile=compile_mode, channels_last=channels_last)
    for vae in vaes if channels_last else ():
        accelerate(vae, channels_last=True)
    try:
        yield
    finally:
        for module in (*unets, *vaes):
            reset(module)


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
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else math.nan


@dataclass
class UNetCall:
    unet: torch.nn.Module
    args: tuple
    kwargs: dict


@contextmanager
def recording(*unets: torch.nn.Module) -> Iterator[list[UNetCall]]:
    """Every call's shapes (and timestep) of the given UNets, for replaying them alone."""
    calls: list[UNetCall] = []

    def hook(module, args, kwargs):
        calls.append(UNetCall(module, tuple(_stand_in(a) for a in args), {k: _stand_in(v) for k, v in kwargs.items()}))

    handles = [u.register_forward_pre_hook(hook, with_kwargs=True) for u in dict.fromkeys(unets)]
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
def replay(calls: list[UNetCall], clock: Clock) -> float:
    clock.sync()
    start = time.perf_counter()
    for call in calls:
        call.unet(*call.args, **call.kwargs)
    clock.sync()
    return time.perf_counter() - start


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def time_method(
    method: str, batch: int, mode: str, pipes: Pipelines, image, texts: tuple[str, str], args: argparse.Namespace,
    clock: Clock, eager_masks: dict[str, torch.Tensor],
) -> Row:
    row = Row(method=f"{method}@{batch}" if batch > 1 else method, mode=mode, batch=batch)
    editor = build_editor(method, pipes, args.quick)
    source, target = texts
    repeats = args.diffedit_repeats if method == "diffedit" else args.repeats

    def edit(seed: int):
        generators = [torch.Generator("cpu").manual_seed(seed + k) for k in range(batch)]
        if batch == 1:
            return [editor.edit(image, target=target, source=source, generator=generators[0])]
        return editor.edit_batch([image] * batch, targets=[target] * batch, sources=[source] * batch, generators=generators)

    unets = [pipes.base.unet, pipes.inpaint.unet]
    for w in range(max(args.warmup, 1)):  # the last (untimed) one records the UNet calls for the floor
        started = time.perf_counter()
        with recording(*unets) as calls:
            edit(1000 + w)
        log(f"    {'warm-up' if w < args.warmup else 'recording'} {w + 1}: {time.perf_counter() - started:.2f} s")
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
    floors = [replay(calls, clock) for _ in range(args.floor_repeats + 1)][1:]  # the first replay warms up
    row.floor_seconds = statistics.median(floors) / batch
    row.overhead = row.seconds / row.floor_seconds - 1
    mask = results[0].mask
    if mask is not None:
        row.mask_coverage = mask.float().mean().item()
        key = row.method
        if mode == "eager":
            eager_masks[key] = mask
        elif key in eager_masks:
            row.mask_iou_vs_eager = _iou(mask, eager_masks[key])
    return row


# -- reporting ------------------------------------------------------------------------------


def add_ratios(rows: list[Row]) -> None:
    reference = {r.mode: r.seconds for r in rows if r.method == "instdiffedit" and r.status == "ok"}
    for r in rows:
        if r.mode in reference and r.status == "ok":
            r.ratio = r.seconds / reference[r.mode]


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = (
        f"Device: {meta['device_name']}, {meta['dtype']}, {meta['resolution']} px, torch {meta['torch']}, "
        f"diffusers {meta['diffusers']}; {meta['weights']}. Seconds per image: median of the repeats "
        f"after warm-up. Floor: the same UNet calls alone, same mode. Generated by `{meta['command']}`.\n\n"
    )
    lines = [
        "| method | mode | s / image | mask | edit | inpaint | x InstDiffEdit | UNet evals | UNet floor (s) | overhead | peak GB | mask IoU vs eager |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v, spec: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)  # noqa: E731
    for r in rows:
        if r.status != "ok":
            lines.append(f"| {r.method} | {r.mode} | {r.status}: {r.error[:80]} |" + " |" * 10)
            continue
        lines.append(
            f"| {r.method} | {r.mode} | {fmt(r.seconds, '.3f')} | {fmt(r.seconds_mask, '.3f')} | {fmt(r.seconds_edit, '.3f')} "
            f"| {fmt(r.seconds_inpaint, '.3f')} | {fmt(r.ratio, '.2f')} | {r.unet_evals} | {fmt(r.floor_seconds, '.3f')} "
            f"| {fmt(100 * r.overhead, '+.1f')} % | {fmt(r.peak_memory_gb, '.2f')} | {fmt(r.mask_iou_vs_eager, '.3f')} |"
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("sd14", "tiny"), default="sd14", help="random-weight architecture (ignored with --base)")
    parser.add_argument("--base", help="a real base pipeline (hub id or folder) instead of random weights")
    parser.add_argument("--inpaint", help="a real inpainting pipeline (with --base)")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, from {', '.join(METHODS)}; instdiffedit@K: K items per batch")
    parser.add_argument("--modes", default="eager,compile", help="comma-separated: eager, compile, cudagraphs, max-autotune, each optionally +cl")
    parser.add_argument("--compile-methods", default=DEFAULT_COMPILE_METHODS, help=f"methods timed in the compiled modes (of {', '.join(COMPILABLE)}; instdiffedit covers instdiffedit@K)")
    parser.add_argument("--budget-s", type=float, default=420, help="start no new measurement after this many seconds (results so far are kept)")
    parser.add_argument("--repeats", type=int, default=3, help="timed edits per method and mode (median)")
    parser.add_argument("--diffedit-repeats", type=int, default=3, help="timed edits of DiffEdit (1000+ UNet evaluations each)")
    parser.add_argument("--floor-repeats", type=int, default=2, help="timed replays of the UNet calls (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed edits first (compiled modes compile here)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32", "auto"), default="auto", help="auto: float16 on CUDA, float32 elsewhere")
    parser.add_argument("--quick", action="store_true", help="few steps (tests of the plumbing; not paper settings)")
    parser.add_argument("--out", type=Path, default=Path("outputs/speed"))
    parser.add_argument("--readme", type=Path, help="also put the table between the speed-table markers of this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = {"auto": torch.float16 if device.type == "cuda" else torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    methods = [parse_method(m) for m in args.methods.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        parse_mode(mode)
    clock = Clock(device)
    started = time.perf_counter()
    log(f"Building {'weights from ' + args.base if args.base else args.arch + ' (random weights)'} on {device}, {dtype} ...")
    pipes = build_pipelines(args.arch, device, dtype, args.base, args.inpaint)
    image, texts = benchmark_input(pipes)
    meta = describe(args, device, dtype, pipes, argv)
    rows: list[Row] = []
    eager_masks: dict[str, torch.Tensor] = {}
    compile_methods = {m for m in args.compile_methods.split(",") if m}
    for mode in modes:  # modes in order (eager first by default): every method gets its eager number first
        compiled = parse_mode(mode)[0] is not None
        with mode_applied(pipes, mode):
            for method, batch in methods:
                label = f"{method}@{batch}" if batch > 1 else method
                if compiled and (method not in COMPILABLE or method not in compile_methods):
                    why = "runs inside a diffusers pipeline: eager only" if method not in COMPILABLE else "not in --compile-methods"
                    rows.append(Row(method=label, mode=mode, batch=batch, status="skipped", error=why))
                    continue
                elapsed = time.perf_counter() - started
                if elapsed > args.budget_s:
                    rows.append(Row(method=label, mode=mode, batch=batch, status="skipped", error=f"time budget ({args.budget_s:.0f} s) spent"))
                    log(f"[{elapsed:6.0f} s] {mode} / {label}: skipped, time budget spent")
                    continue
                log(f"[{elapsed:6.0f} s] {mode} / {label}")
                try:
                    row = time_method(method, batch, mode, pipes, image, texts, args, clock, eager_masks)
                except Exception as error:  # one method's failure must not lose the others' numbers
                    row = Row(method=label, mode=mode, batch=batch, status="failed", error=f"{type(error).__name__}: {error}")
                    log(f"    FAILED: {row.error}")
                else:
                    log(f"    {row.seconds:.3f} s per image (floor {row.floor_seconds:.3f} s, {100 * row.overhead:+.1f} %), {row.unet_evals} UNet evals, peak {row.peak_memory_gb:.2f} GB")
                rows.append(row)
                add_ratios(rows)
                write_outputs(rows, meta, args.out, None)  # a run cut short keeps what it measured
    add_ratios(rows)
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    table = write_outputs(rows, meta, args.out, args.readme)
    log("\n" + table)
    log(f"Wrote {args.out}/speed.json, speed.csv, speed.md in {meta['wall_seconds']} s.")
    return rows


def benchmark_input(pipes: Pipelines):
    """One synthetic item at the model's resolution: a red circle to turn into a blue square."""
    from benchmarks.datasets import SyntheticDataset

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
        "command": "python -m benchmarks.speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "paper_a30_seconds": PAPER_A30,
        "args": {k: str(v) for k, v in vars(args).items()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


if __name__ == "__main__":
    main()
