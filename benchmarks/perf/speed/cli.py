"""The speed benchmark: every method at paper settings, in one process on one device.

    python -m benchmarks.perf.speed --out docs/speed                 # SD 1.4 architecture, random weights
    python -m benchmarks.perf.speed --modes eager,graphs --methods instdiffedit,diffedit
    python -m benchmarks.perf.speed --base /path/sd-v1-4 --inpaint /path/sd-inpainting   # real weights
    python -m benchmarks.perf.speed --arch sd14 --quick --modes eager,graphs --check     # GPU self-check, ~1 min
    python -m benchmarks.perf.speed --arch tiny --quick --device cpu  # the plumbing, on a CPU, in seconds
    python -m benchmarks.perf.speed --model tiny_flux --quick --device cpu  # any model of conf/model, as run.py builds it
    python -m benchmarks.perf.speed --arch flux_dev --modes graphs --short-warmup --out docs/speed/flux_dev --doc docs/speed.md
    python -m benchmarks.perf.speed --arch tiny_flux --quick --device cpu   # the same on FLUX.1's tiny model
    python -m benchmarks.perf.speed --backbone-table docs/speed --doc docs/speed.md  # the guide's table from runs made elsewhere

``--arch``: ``sd14`` (Stable Diffusion 1.4, the paper's model), ``sdxl``, ``sd35_medium`` and
``flux_dev`` (full size, :mod:`benchmarks.models.family_architectures`; fp16 for SDXL, bf16 for
the others, at 1024 px), all with random weights, which cost what real ones do; ``tiny`` and
``tiny_sdxl``, ``tiny_sd3``, ``tiny_flux`` are the tiny models of the tests. ``--model <name>``
times the model of ``conf/model/<name>.yaml`` instead (``sd14_random``, the tiny models, or real
weights such as ``sdxl``), built as ``run.py model=<name>`` builds it. On SD 1.x the
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

Modes are the UNet fast paths (``model.fast_path``, :mod:`instdiffedit.fast_paths`): ``eager``,
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
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.devices import resolve_device
from benchmarks.models.loading import Pipelines
from benchmarks.perf.doc_sections import replace_section
from benchmarks.perf.speed.clock import Budget, Clock
from benchmarks.perf.speed.methods import TIMED, check_methods_run_on, methods_for, on_fast_paths, parse_method, skip_reason
from benchmarks.perf.speed.models import ARCH_FAMILIES, arch_dtype, benchmark_input, build_pipelines, model_family, model_pipelines, resolution
from benchmarks.perf.speed.modes import MODES, mode_applied, parse_mode
from benchmarks.perf.speed.tables import BACKBONE_TABLE, add_ratios, backbone_markdown, write_outputs
from benchmarks.perf.speed.timing import Row, log, time_method
from instdiffedit.backbones import denoiser_of
from instdiffedit.fast_paths import (
    DEFAULT_FAST_PATH,
    resolve_fast_path,
)

DEFAULT_METHODS = "instdiffedit,diffedit,sdedit,diffedit_ddim,ledits_pp,instdiffedit@8"  # on SD 1.x; @8: the runner's default batch


CHECK_METHODS = "instdiffedit,diffedit,sdedit,instdiffedit@2"  # --check: the methods on the fast paths


DEFAULT_MODES = "eager,graphs,compiled"
# Each new (UNet, shape, processors) costs a compilation (about a minute for SD 1.4's UNet), so
# by default only InstDiffEdit runs compiled; --compile-methods adds the others.
DEFAULT_COMPILE_METHODS = "instdiffedit"
PAPER_A30 = {"instdiffedit": 10.8, "diffedit": 64.0}  # seconds per image in the paper (A30)
CHECK_MIN_MASK_IOU = 0.98  # --check: a fast mode's mask against eager's, same seed
CHECK_MAX_IMAGE_DIFF = 2.0  # --check: mean |difference| of the images, in 0..255 levels


def warm_cache_warmup(row: Row, args: argparse.Namespace) -> float:
    """The row's first-edit seconds in a second process sharing this one's compile cache."""
    with tempfile.TemporaryDirectory(prefix="instdiffedit-warm-cache-") as out:
        command = [
            sys.executable,
            "-m",
            "benchmarks.perf.speed",
            "--methods",
            row.method,
            "--modes",
            row.mode,
            "--warmup-only",
            "--warm-cache-modes",
            "",
            "--out",
            out,
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--seed",
            str(args.seed),
            "--compile-methods",
            args.compile_methods,
            *(["--inductor-cache", str(args.inductor_cache)] if args.inductor_cache else []),
            *(["--short-warmup"] if args.short_warmup else []),
        ]
        if args.base:
            command += ["--base", args.base, *(["--inpaint", args.inpaint] if args.inpaint else [])]
        else:
            command += ["--model", args.model] if args.model else ["--arch", args.arch]
        command += ["--quick"] if args.quick else []
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.warm_cache_timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the warm-cache run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        (probe,) = json.loads((Path(out) / "speed.json").read_text())["rows"]
    return probe["warmup_seconds"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--arch", choices=tuple(ARCH_FAMILIES), default="sd14", help="random-weight architecture")
    source.add_argument("--model", help="a model of conf/model (as run.py model=<name> builds it), instead of --arch: e.g. sd14_random, tiny, tiny_flux, sdxl")
    source.add_argument("--base", help="a real base pipeline (hub id or folder) instead of random weights")
    parser.add_argument("--inpaint", help="a real inpainting pipeline (with --base)")
    parser.add_argument(
        "--methods",
        help=f"comma-separated, from {', '.join(TIMED)}; instdiffedit@K: K items per batch (default on SD 1.x {DEFAULT_METHODS}, "
        f"with --check {CHECK_METHODS}; on the other families every method that runs on the family)",
    )
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated: {', '.join(MODES)}, each optionally +cl (channels_last)")
    parser.add_argument(
        "--compile-methods",
        default=DEFAULT_COMPILE_METHODS,
        help=f"methods timed in the compiled mode (of {', '.join(on_fast_paths())}; instdiffedit covers instdiffedit@K)",
    )
    parser.add_argument(
        "--warm-cache-modes",
        default="compiled",
        help="modes whose single-edit InstDiffEdit warm-up is measured again in a second process with this one's compile cache ('' for none)",
    )
    parser.add_argument(
        "--inductor-cache", help="the compile cache folder (TORCHINDUCTOR_CACHE_DIR); default, a fresh temporary one, so the first compilation is cold"
    )
    parser.add_argument("--warm-cache-timeout-s", type=float, default=300)
    parser.add_argument("--budget-s", type=float, default=420, help="start no new measurement after this many seconds (results so far are kept)")
    parser.add_argument("--repeats", type=int, default=3, help="timed edits per method and mode (median)")
    parser.add_argument("--diffedit-repeats", type=int, default=2, help="timed edits of DiffEdit (1000+ UNet evaluations each)")
    parser.add_argument("--floor-repeats", type=int, default=2, help="timed replays of the UNet calls (median); 0: no floor")
    parser.add_argument("--warmup", type=int, default=1, help="untimed edits first (at least one: the first is the warm-up time)")
    parser.add_argument(
        "--short-warmup",
        action="store_true",
        help="warm up with a step or two of each loop at the edit's shapes (each method's declared warmup overrides), not a full edit",
    )
    parser.add_argument("--warmup-only", action="store_true", help="time the first edit only (the warm-cache run)")
    parser.add_argument("--check", action="store_true", help="verify, don't time: one edit per method and mode against eager's; exit 1 on a mismatch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32", "auto"),
        default="auto",
        help="auto: on CUDA the arch's published precision (float16 for SD 1.x and SDXL, bfloat16 for SD 3.5 and FLUX.1), float32 elsewhere",
    )
    parser.add_argument("--quick", action="store_true", help="few steps (tests of the plumbing; not paper settings)")
    parser.add_argument("--out", type=Path, help="the output folder (default outputs/speed, outputs/speed/<arch> for the other families)")
    parser.add_argument(
        "--doc",
        type=Path,
        help="also put the table into this file: SD 1.x's between the speed-table markers, the other families' (every run in --out's parent) between the speed-backbones markers",
    )
    parser.add_argument(
        "--backbone-table",
        type=Path,
        metavar="ROOT",
        help="time nothing: put the table of the backbone runs in ROOT/<arch>/speed.json into --doc (after runs made elsewhere)",
    )
    args = parser.parse_args(argv)
    if args.backbone_table is not None and args.doc is None:
        parser.error("--backbone-table needs --doc, the file to put the table into")
    sd = source_family(args) == "sd"
    args.out = args.out or Path("outputs/speed") / ("" if sd else args.model or args.arch)
    if sd:  # elsewhere the default is every method that runs on the family (main)
        args.methods = args.methods or (CHECK_METHODS if args.check else DEFAULT_METHODS)
    if args.check:  # one timed edit, a short floor, eager first as the reference
        args.repeats = args.diffedit_repeats = args.floor_repeats = 1
        args.warm_cache_modes = ""
        if "eager" not in args.modes.split(","):
            args.modes = "eager," + args.modes
    return args


def source_family(args: argparse.Namespace) -> str:
    """The family of the model the arguments name: real SD weights, a model config or an architecture."""
    if args.base is not None:
        return "sd"
    return model_family(args.model) if args.model is not None else ARCH_FAMILIES[args.arch]


def weights(args: argparse.Namespace) -> str:
    """What the timed model's weights are, for the tables."""
    if args.base is not None:
        return f"weights {args.base} + {args.inpaint}"
    if args.model is not None:
        return f"model={args.model}"
    return f"{args.arch} architecture, random weights (same cost as real ones)"


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.backbone_table is not None:
        replace_section(args.doc, BACKBONE_TABLE, backbone_markdown(args.backbone_table))
        return []
    device = resolve_device(args.device)
    family = source_family(args)
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
    if args.model is not None:
        log(f"Building model={args.model} on {device} ...")
        pipes = model_pipelines(args.model, device, args.dtype)
        dtype = denoiser_of(pipes.base).dtype
    else:
        dtype = arch_dtype(args.dtype, args.arch if args.base is None else "sd14", device)
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
                        f"{row.syncs_per_edit:.0f} syncs, {row.denoiser_evals} denoiser evals, peak {row.peak_memory_gb:.2f} GB"
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
        log(
            f"{verdict} {r.mode} / {r.method}: mask IoU vs eager {r.mask_iou_vs_eager:.3f}, image diff {r.image_diff_vs_eager:.2f} levels, {r.syncs_per_edit:.0f} syncs per edit"
        )
        if verdict == "FAIL":
            failures.append(f"{r.mode} / {r.method} disagrees with eager")
    if failures:
        log("check FAILED: " + "; ".join(failures))
        raise SystemExit(1)
    log(f"check passed (mask IoU >= {CHECK_MIN_MASK_IOU}, mean image difference <= {CHECK_MAX_IMAGE_DIFF} levels)")


def describe(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, pipes: Pipelines, argv: list[str] | None) -> dict[str, Any]:
    import diffusers

    return {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "dtype": str(dtype).removeprefix("torch."),
        "resolution": resolution(pipes),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "weights": weights(args),
        "default_mode": resolve_fast_path(DEFAULT_FAST_PATH, device),
        "inductor_cache": args.inductor_cache,
        "command": "python -m benchmarks.perf.speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "paper_a30_seconds": PAPER_A30,
        "args": {k: str(v) for k, v in vars(args).items()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
