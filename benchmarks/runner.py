"""The item loop: edit, measure, append one row per item, resume, shard, summarise."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy
import pandas as pd
import PIL.Image
import torch
from tqdm.auto import tqdm

from benchmarks.datasets import EditDataset, EditItem
from benchmarks.interrupts import Interrupted, stop_after_batch
from benchmarks.loggers import NullLogger, RunLogger
from benchmarks.metrics import saved_pairs
from benchmarks.results import ResultsTable, metric_columns
from benchmarks.sharding import RESULTS_STEM, shard_file_name
from instdiffedit.types import EditResult, Editor

log = logging.getLogger(__name__)

Metric = Callable[[EditItem, EditResult], dict[str, float]]


class CorpusMetric(Protocol):
    """A metric over a whole run (FID, SFID/CSFID): (item, edited image) pairs -> named values."""

    def compute(self, pairs: Iterable[tuple[EditItem, PIL.Image.Image]]) -> dict[str, float]: ...


@dataclass(frozen=True)
class Shard:
    """Items ``index, index + count, index + 2 count, ...`` of a split: disjoint, and together complete."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard.index must be in [0, shard.count), got index={self.index}, count={self.count}.")

    def select(self, item_ids: Sequence[str]) -> list[str]:
        return list(item_ids[self.index :: self.count])

    @property
    def results_name(self) -> str:
        return self.file_name(RESULTS_STEM, "jsonl")

    def file_name(self, stem: str, suffix: str) -> str:
        """``stem.suffix`` unsharded, ``stem.shard-003-of-016.suffix`` for shard 3 of 16: shards share a folder."""
        return shard_file_name(stem, suffix, self.index, self.count)


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")


def item_seed(master_seed: int, item_id: str) -> int:
    """The item's seed: a hash of the master seed and the item id, so it never depends on order or shard."""
    digest = hashlib.sha256(f"{master_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of everything that determines results: rows of different configs never mix."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _mask_image(mask: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray((mask.float().numpy() * 255).round().astype("uint8"))


def _save_outputs(directory: Path, item: EditItem, result: EditResult) -> None:
    """Everything a report draws for the item, beside the edit: ``<id>.png`` (the edit),
    ``<id>.mask.png`` (the method's mask), ``<id>.input.png`` and ``<id>.gt.png`` (the input and
    its ground-truth mask, so reports never reload the split), ``<id>.steps.npz`` (per-step masks).
    """
    directory.mkdir(parents=True, exist_ok=True)
    result.image.save(directory / f"{item.id}.png")
    item.image.convert("RGB").save(directory / f"{item.id}.input.png")
    if result.mask is not None:
        _mask_image(result.mask).save(directory / f"{item.id}.mask.png")
    if item.gt_mask is not None:
        _mask_image(item.gt_mask).save(directory / f"{item.id}.gt.png")
    if result.mask_history is not None:
        numpy.savez_compressed(directory / f"{item.id}.steps.npz", masks=result.mask_history.numpy())


def edit_items(editor: Editor, items: Sequence[EditItem], seeds: Sequence[int]) -> list[EditResult]:
    """Edit items, together when there are several and the editor has ``edit_batch``, each with
    a generator seeded for it."""
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    if len(items) > 1 and hasattr(editor, "edit_batch"):
        return editor.edit_batch(
            [item.image for item in items],
            targets=[item.target for item in items],
            sources=[item.source for item in items],
            prompts=[item.prompt for item in items],
            masks=[item.gt_mask for item in items],
            generators=generators,
        )
    return [
        editor.edit(item.image, target=item.target, source=item.source, prompt=item.prompt, mask=item.gt_mask, generator=g)
        for item, g in zip(items, generators, strict=True)
    ]


def measure(item: EditItem, result: EditResult, metrics: Mapping[str, Metric]) -> dict[str, Any]:
    """The row values of one edit: its timings, UNet evaluations and every metric's values."""
    values: dict[str, Any] = {f"seconds_{k}": v for k, v in result.timings.items()}
    values["seconds"] = result.timings.get("total", math.nan)
    values["unet_evals"] = result.unet_evals
    for metric in metrics.values():
        values.update(metric(item, result))
    return values


def run(
    editor: Editor,
    dataset: EditDataset,
    table: ResultsTable,
    *,
    method: str,
    config_id: str,
    params: Mapping[str, Any],
    master_seed: int,
    shard: Shard = Shard(),
    metrics: Mapping[str, Metric] | None = None,
    corpus_metrics: Mapping[str, CorpusMetric] | None = None,
    logger: RunLogger | None = None,
    image_dir: Path | None = None,
    done_elsewhere: Iterable[str] = (),
    batch_size: int = 1,
) -> pd.DataFrame:
    """Run ``editor`` over the shard's items not yet done; return the summary of all rows.

    ``config_id`` keys the rows (see :func:`config_hash`); ``params`` become ``param.*`` columns.

    Each item's row is appended to ``table`` as soon as it is computed. An item whose loading,
    editing or metrics fail gets a row with ``status="failed"`` and the error, and the run
    goes on; a later run retries it.

    The first SIGINT (Ctrl-C) or SIGTERM finishes the batch in flight, writes its rows and raises
    :class:`~benchmarks.interrupts.Interrupted`; a second one raises
    :class:`~benchmarks.interrupts.Aborted` (a ``KeyboardInterrupt``) at once. Either way every row written before stays (rows are fsynced one by one).

    ``corpus_metrics`` are computed at the end over every item done so far (this run's and
    earlier runs'), from the edited images saved in ``image_dir``, and join the summary.

    ``done_elsewhere``: items already done for this method and config in other results files of
    the run (other shards, or another ``shard.count``): skipped too, and counted by corpus metrics.

    ``batch_size``: items edited together (throughput mode; the editor's ``edit_batch`` puts
    their UNet work into shared calls). Each item keeps its own seed, so its row is what it
    gets alone, up to floating-point effects of larger batches; its ``seconds*`` are its share
    of the batch's. A batch whose loading or editing fails is redone one item at a time, so
    only a bad item fails. Each item's row is appended as soon as its metrics are computed.
    """
    check_batch_size(batch_size)
    if corpus_metrics and image_dir is None:
        raise ValueError("Corpus metrics (FID, SFID) read the saved edits: keep save_images=true.")
    metrics = metrics or {}
    logger = logger or NullLogger()
    done_elsewhere = set(done_elsewhere)
    table.repair()  # a torn last line (a killed run) goes to <file>.torn; its item is done again
    done = table.completed(method, config_id) | done_elsewhere
    todo = [i for i in shard.select(dataset.item_ids()) if i not in done]
    log.info("%s on %s: %d items to do, %d already done.", method, dataset.name, len(todo), len(done))
    written = 0

    def write(row: dict[str, Any]) -> None:
        nonlocal written
        table.append(row)
        logger.log_row(row)
        written += 1
        progress.update()

    with stop_after_batch() as stop, tqdm(total=len(todo), desc=f"{method} on {dataset.name}", unit="item") as progress:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            _edit_chunk(editor, dataset, chunk, method, config_id, params, master_seed, metrics, image_dir, write)
            if stop.signal is not None:
                raise Interrupted(stop.signal, written, len(todo) - written)
    summary = summarize(table.frame())
    for name, metric in (corpus_metrics or {}).items():
        done = sorted(table.completed(method, config_id) | done_elsewhere)
        log.info("Computing %s over %d edited images.", name, len(done))
        for key, value in metric.compute(saved_pairs(dataset, image_dir, done)).items():
            summary.loc[(method, config_id), key] = value
    logger.log_summary(summary)
    return summary


def _edit_chunk(
    editor: Editor,
    dataset: EditDataset,
    item_ids: Sequence[str],
    method: str,
    config_id: str,
    params: Mapping[str, Any],
    master_seed: int,
    metrics: Mapping[str, Metric],
    image_dir: Path | None,
    write: Callable[[dict[str, Any]], None],
) -> None:
    """Edit some items together and ``write`` each one's row as soon as its metrics are computed;
    when loading or editing the batch fails, each item again on its own."""
    rows = {}
    for item_id in item_ids:
        seed = item_seed(master_seed, item_id)
        rows[item_id] = {
            "item_id": item_id,
            "method": method,
            "config_id": config_id,
            "dataset": dataset.name,
            "seed": seed,
            **{f"param.{k}": v for k, v in params.items() if isinstance(v, (int, float, str, bool))},
        }

    def finish(item_id: str, edited: Callable[[], tuple[EditItem, EditResult]], batch_size: int) -> None:
        row, started = rows[item_id], time.perf_counter()
        try:
            item, result = edited()
            _finish_row(row, item, result, measure(item, result, metrics), image_dir, batch_size)
        except Exception as error:  # a bad item must not stop the run; its row says why
            log.error("Item %s failed:\n%s", item_id, traceback.format_exc())
            row.update(status="failed", error=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - started)
        row["finished_at"] = time.time()  # wall clock, for throughput over a run's shards (never a result)
        write(row)

    def alone(item_id: str) -> tuple[EditItem, EditResult]:
        item = dataset.load(item_id)
        return item, edit_items(editor, [item], [rows[item_id]["seed"]])[0]

    if len(item_ids) > 1:
        try:
            items = [dataset.load(item_id) for item_id in item_ids]
            results = edit_items(editor, items, [rows[i]["seed"] for i in item_ids])
        except Exception:  # redo one by one: only the item at fault gets a failed row
            log.warning("A batch of %d items failed; editing them one at a time:\n%s", len(item_ids), traceback.format_exc())
        else:
            for item, result in zip(items, results, strict=True):
                finish(item.id, lambda item=item, result=result: (item, result), len(item_ids))
            return
    for item_id in item_ids:
        finish(item_id, lambda item_id=item_id: alone(item_id), 1)


def _finish_row(
    row: dict[str, Any], item: EditItem, result: EditResult, values: dict[str, Any], image_dir: Path | None, batch_size: int
) -> None:
    if image_dir is not None:
        _save_outputs(image_dir, item, result)
    row.update({f"meta.{k}": v for k, v in item.meta.items()})
    row.update(target=item.target, source=item.source)  # the edit, as reports print it
    row.update(status="ok", flags="; ".join(item.flags), **values)
    row["batch_size"] = batch_size  # items edited together: its seconds are a 1/batch_size share


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method and config: items, failed and flagged items, then the mean of every metric column
    over the items that succeeded (mask IoU is n/a for methods without masks), seconds, UNet evals."""
    if frame.empty:
        return pd.DataFrame()
    ok = frame[frame["status"] == "ok"]
    groups = frame.groupby(["method", "config_id"], sort=True)
    flagged = frame["flags"].fillna("").astype(bool) if "flags" in frame else pd.Series(False, index=frame.index)
    summary = pd.DataFrame(
        {
            "items": groups.size(),
            "failed": groups["status"].apply(lambda s: int((s != "ok").sum())),
            "flagged": flagged.groupby([frame["method"], frame["config_id"]]).sum().astype(int),
        }
    )
    ok_groups = ok.groupby(["method", "config_id"], sort=True)
    for column in metric_columns(ok):
        summary[column] = ok_groups[column].mean()
    return summary
