"""Throughput vs GPUs: the same run as 1 shard and as N shards, one GPU each, through the launcher.

    python -m benchmarks.perf.scaling --model sd14_random --dataset synthetic --override dataset.size=512 \
        --n 48 --gpus 1 2 4 --doc docs/scaling.md                                  # on a machine with >= 4 GPUs
    python -m benchmarks.perf.scaling --model tiny --dataset synthetic --n 4 \\
        --launcher submitit_local --override dataset.size=64 --out /tmp/scaling    # a CPU smoke test

Each configuration runs exactly what a user would type (``run.py -m hydra/launcher=local_gpus
shard.count=N 'shard.index=range(0,N)'``) into a fresh output folder, so nothing resumes. Model
loading is left out of the rate: each shard's rate comes from its rows' completion times
(``finished_at``) after its first ``--warmup`` items, i.e. from steady-state editing only.
The N-shard rate is the sum of its shards' rates; the JSON also says how much the shards'
measured windows overlapped, since a sum of rates only means something for shards that ran
side by side. Every N-shard run's merged rows are compared with the one-shard run's (timing and
device columns aside): sharding must not change a result. Writes ``<out>.json`` and ``<out>.png`` (items/s vs GPUs, the GPU's name in the title);
without matplotlib only the JSON, and ``--plot-only <out>.json`` draws the figure later, elsewhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from benchmarks.perf.doc_sections import replace_section
from benchmarks.run.folder import Shard, find_run_dirs
from benchmarks.run.merge import comparable, format_report, merge_run
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[2]
TARGET_SPEEDUPS = {2: 1.9, 4: 3.7}
"""Items/s on N GPUs over items/s on one, for SD-sized (GPU-bound) items."""


@dataclass
class ShardRate:
    """One shard's steady-state rate: ``items`` completed between ``start`` and ``end`` (unix seconds)."""

    index: int
    items: int
    start: float
    end: float

    @property
    def rate(self) -> float:
        return self.items / (self.end - self.start)


@dataclass
class Measurement:
    gpus: int
    items_per_second: float  # sum over the shards
    shards: list[ShardRate]
    overlap: float  # time all shards were measuring at once / the longest shard window
    wall_seconds: float  # the whole command, model loading and launcher included
    command: list[str]
    rows: pd.DataFrame = field(repr=False)  # the merged rows, for comparing shard counts


def shard_rate(finished_at: Sequence[float], index: int, warmup: int) -> ShardRate:
    """The rate after ``warmup`` items, from the completion times of one shard's items.

    The clock starts when warm-up item ``warmup`` finishes, so the ``n - warmup`` items after it
    are timed from start to end of their own work, with no model loading and no first-item
    compilation or allocator growth in the window.
    """
    times = sorted(finished_at)
    if warmup < 1 or len(times) < warmup + 1:
        raise ValueError(
            f"Shard {index} finished {len(times)} items; measuring after {warmup} warm-up items needs at least "
            f"{warmup + 1} (and --warmup >= 1): raise --n or lower --warmup."
        )
    return ShardRate(index, len(times) - warmup, times[warmup - 1], times[-1])


def combine(shards: list[ShardRate]) -> tuple[float, float]:
    """Items/s of shards that ran side by side (the sum of their rates) and how much their windows overlap."""
    common = min(s.end for s in shards) - max(s.start for s in shards)
    longest = max(s.end - s.start for s in shards)
    return sum(s.rate for s in shards), max(common, 0.0) / longest


def device_name() -> str:
    """The GPU's name (what the figure is titled with), or the CPU's for a smoke test."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()})"


def measure(gpus: int, args: argparse.Namespace, work: Path) -> Measurement:
    """Run the benchmark as ``gpus`` shards through the launcher and time its shards' steady state."""
    output_root = work / f"{gpus}-gpu"
    command = [
        sys.executable, "run.py", "-m", f"hydra/launcher={args.launcher}",
        f"model={args.model}", f"dataset={args.dataset}", f"dataset.n={args.n}", f"method={args.method}",
        "logger=none", f"paths.output_root={output_root}",
        f"shard.count={gpus}", f"shard.index=range(0,{gpus})", *args.override,
    ]  # fmt: skip
    print(f"[{gpus} GPU(s)] {' '.join(command)}", flush=True)
    log_path = work / f"{gpus}-gpu.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        returncode = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"The {gpus}-shard run failed (exit {returncode}); its output is in {log_path}.")
    (run_dir,) = find_run_dirs([output_root])
    merged = merge_run(run_dir)
    if not merged.complete:
        raise RuntimeError(f"The {gpus}-shard run is incomplete:\n{format_report(merged)}")
    shards = []
    for index in range(gpus):
        rows = ResultsTable(run_dir / Shard(index, gpus).results_name).rows()
        shards.append(shard_rate([r["finished_at"] for r in rows], index, args.warmup))
    rate, overlap = combine(shards)
    print(f"[{gpus} GPU(s)] {rate:.3f} items/s (overlap {overlap:.0%}, wall {wall:.0f} s)", flush=True)
    return Measurement(gpus, rate, shards, overlap, wall, command, comparable(pd.DataFrame(merged.records)))


def _measurement_record(m: Measurement) -> dict:
    """A measurement as the JSON holds it: without its rows, each shard with its rate."""
    record = {f.name: getattr(m, f.name) for f in fields(m) if f.name not in ("rows", "shards")}
    return record | {"shards": [asdict(s) | {"rate": s.rate} for s in m.shards]}


def summary(result: dict) -> str:
    """The scaling paragraph of docs/scaling.md, from a result of :func:`main` (as written to JSON)."""
    rates = ", ".join(f"{m['items_per_second']:.2f} items/s on {m['gpus']} GPU(s)" for m in result["measurements"])
    speedups = (
        "; ".join(
            f"**{float(s):.2f}x** on {g} (target {result['targets'][g]}x: {'met' if result['meets_targets'][g] else 'missed'})"
            for g, s in result["speedup"].items()
            if g in result["targets"]
        )
        or "one GPU only: no speedup measured"
    )
    identical = result["rows_identical_to_one_shard"]
    rows = (
        (f"merged rows {'identical to' if all(identical.values()) else 'DIFFERENT from'} the one-shard run's (timing and device columns aside)")
        if identical
        else "no sharded run to compare"
    )
    overrides = "".join(f" {o}" for o in result["overrides"])
    return (
        f"Measured on {result['device']} ({result['measured_at']}; `python -m benchmarks.perf.scaling --model "
        f"{result['model']} --dataset {result['dataset']} --method {result['method']} --n {result['n']}"
        f"{' --override' + overrides if overrides else ''}`): {rates}. {speedups}; {rows}.\n"
    )


def plot(result: dict, path: Path) -> None:
    """Items/s vs GPUs from a result of :func:`main` (as written to JSON), with the linear ideal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gpus = [m["gpus"] for m in result["measurements"]]
    rates = [m["items_per_second"] for m in result["measurements"]]
    base = rates[0] / gpus[0]
    title = f"{result['method']} ({result['model']}) on {result['dataset']}, n={result['n']}: {result['device']}"
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(gpus, [base * g for g in gpus], "--", color="gray", label="linear (from 1 GPU)")
    ax.plot(gpus, rates, "o-", color="C0", label="measured")
    for g, r in zip(gpus, rates):
        ax.annotate(f"{r:.2f}/s ({r / base:.2f}x)", (g, r), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set(xlabel="GPUs (one shard each)", ylabel="items / second", xticks=gpus, title=title)
    ax.title.set_fontsize(9)
    ax.set_ylim(bottom=0)
    ax.set_xlim(gpus[0] - 0.3, gpus[-1] + 0.7)  # room for the last label
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sd14_random", help="a model config (sd14_random: SD 1.4's cost, random weights)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--method", default="instdiffedit")
    parser.add_argument("--n", type=int, default=64, help="items in the split (each shard gets n / GPUs)")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2], help="shard counts to measure, one GPU each")
    parser.add_argument("--warmup", type=int, default=2, help="items per shard left out of the rate")
    parser.add_argument("--launcher", default="local_gpus", help="hydra/launcher preset (submitit_local: CPU smoke test)")
    parser.add_argument("--override", nargs="*", default=[], help="further run.py overrides, e.g. dataset.size=64")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "scaling", help="writes OUT.json and OUT.png")
    parser.add_argument("--work", type=Path, default=None, help="output folder of the runs (default: a fresh one under outputs/scaling)")
    parser.add_argument("--doc", type=Path, default=None, help="also write the summary between this file's scaling markers (docs/scaling.md)")
    parser.add_argument("--plot-only", type=Path, default=None, metavar="JSON", help="only draw the figure of a measurement")
    args = parser.parse_args(argv)
    if args.plot_only is not None:
        plot(json.loads(args.plot_only.read_text()), args.plot_only.with_suffix(".png"))
        print(f"Wrote {args.plot_only.with_suffix('.png')}")
        return 0

    gpus = sorted(set(args.gpus))
    if gpus[0] != 1:
        parser.error("--gpus must include 1: the speedup is relative to one GPU.")
    if args.launcher == "local_gpus":
        import torch

        if torch.cuda.device_count() < gpus[-1]:
            parser.error(
                f"--gpus {gpus[-1]} needs {gpus[-1]} GPUs and torch sees {torch.cuda.device_count()}; "
                "for a smoke test on the CPU pass --launcher submitit_local."
            )
    work = args.work or ROOT / "outputs" / "scaling" / time.strftime("%Y-%m-%d_%H-%M-%S")
    work.mkdir(parents=True, exist_ok=True)

    name = device_name()
    measurements = [measure(g, args, work) for g in gpus]
    base = measurements[0].items_per_second
    speedups = {m.gpus: m.items_per_second / base for m in measurements}
    identical = {m.gpus: m.rows.equals(measurements[0].rows) for m in measurements[1:]}
    result = {
        "device": name,
        "launcher": args.launcher,
        "model": args.model,
        "dataset": args.dataset,
        "method": args.method,
        "n": args.n,
        "warmup_items_per_shard": args.warmup,
        "overrides": args.override,
        "speedup": speedups,
        "targets": {g: t for g, t in TARGET_SPEEDUPS.items() if g in speedups},
        "meets_targets": {g: speedups[g] >= t for g, t in TARGET_SPEEDUPS.items() if g in speedups},
        "rows_identical_to_one_shard": identical,
        "measurements": [_measurement_record(m) for m in measurements],
        "torch": __import__("torch").__version__,
        "python": platform.python_version(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print("Speedup: " + ", ".join(f"{g} GPU(s) {s:.2f}x" for g, s in speedups.items()))
    if not all(identical.values()):
        print(f"warning: sharded rows differ from the one-shard run's: {identical}; compare the run folders under {work}.")
    if args.doc is not None:
        replace_section(args.doc, "scaling", summary(result))
        print(f"Updated the scaling section of {args.doc}")
    print(f"Wrote {args.out.with_suffix('.json')}")
    try:
        plot(result, args.out.with_suffix(".png"))
    except ImportError:
        print(f"matplotlib is not installed: no figure; draw it with --plot-only {args.out.with_suffix('.json')}")
    else:
        print(f"Wrote {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
