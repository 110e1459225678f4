"""One (method, mode) measurement: warm-up, timed edits, host syncs, floors and the comparison with eager."""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy
import torch

from benchmarks.models.loading import Pipelines
from benchmarks.perf.speed.clock import Budget, Clock
from benchmarks.perf.speed.methods import build_editor
from benchmarks.perf.speed.models import denoisers
from benchmarks.perf.speed.modes import parse_mode, release_graphs
from benchmarks.perf.speed.recording import Call, captures, plain_processors, recording, replay
from instdiffedit.fast_paths import (
    DenoiserRunner,
)


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
    denoiser_evals: int = 0  # denoiser image-evaluations (UNet or transformer)
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
    method: str,
    batch: int,
    mode: str,
    pipes: Pipelines,
    item,
    args: argparse.Namespace,
    clock: Clock,
    eager: dict[str, Any],
    budget: Budget,
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
            [item.image] * batch,
            targets=[item.target] * batch,
            sources=[item.source] * batch,
            masks=[mask] * batch,
            generators=generators,
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
    row.denoiser_evals = reference.denoiser_evals
    measure_floors(row, calls, unets, plain, clock, args.floor_repeats, budget)
    compare_with_eager(row, reference, eager)
    return row


def measure_floors(
    row: Row,
    calls: list[Call],
    unets: list[torch.nn.Module],
    plain: dict[DenoiserRunner, tuple[object, ...]],
    clock: Clock,
    repeats: int,
    budget: Budget,
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
