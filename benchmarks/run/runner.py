"""The item loop: edit, measure, append one row per item, resume, shard, summarise."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import torch
from tqdm.auto import tqdm

from benchmarks.data.items import EditDataset, EditItem
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.run.changed import FINGERPRINT, SetAside, set_aside_changed_rows
from benchmarks.run.folder import ItemImages, Shard
from benchmarks.run.interrupts import Interrupted, stop_after_batch
from benchmarks.run.loggers import NullLogger, RunLogger
from benchmarks.run.results import ResultsTable, metric_columns
from benchmarks.run.writes import RunFolderError, writing
from instdiffedit.types import BatchEditor, Editor, EditResult

if TYPE_CHECKING:
    from benchmarks.metrics.corpus import CorpusMetric

log = logging.getLogger(__name__)

Metric = Callable[[EditItem, EditResult], dict[str, float]]


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")


@dataclass(frozen=True)
class RunSpec:
    """What a run computes and how: the rows' key and settings, the seeds, the slice, the batching.

    ``method`` and ``config_id`` key the rows (see :func:`config_hash`); ``params`` become their
    ``param.*`` columns; each item's seed is :func:`item_seed` of ``master_seed`` and its id;
    ``shard`` selects the items; ``batch_size`` items are edited together (throughput mode);
    ``image_dir`` receives each item's images (:meth:`benchmarks.run.folder.ItemImages.save`),
    None to save none.
    """

    method: str
    config_id: str
    master_seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    shard: Shard = Shard()
    batch_size: int = 1
    image_dir: Path | None = None

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)

    def row(self, item_id: str, dataset: str) -> dict[str, Any]:
        """The start of the item's row: its key, split, seed and the run's settings."""
        return {
            "item_id": item_id,
            "method": self.method,
            "config_id": self.config_id,
            "dataset": dataset,
            "seed": item_seed(self.master_seed, item_id),
            **{f"param.{k}": v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))},
        }


def item_seed(master_seed: int, item_id: str) -> int:
    """The item's seed: a hash of the master seed and the item id, so it never depends on order or shard."""
    digest = hashlib.sha256(f"{master_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of everything that determines results: rows of different configs never mix."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def edit_items(editor: Editor, items: Sequence[EditItem], seeds: Sequence[int]) -> list[EditResult]:
    """Edit items, together when there are several and the editor is batched (``capabilities.batched``),
    each with a generator seeded for it; an instruction editor (``capabilities.instructions``) also
    gets the item's own instruction, where its split ships one."""
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    if len(items) > 1 and editor.capabilities.batched:
        return cast(BatchEditor, editor).edit_batch(
            [item.image for item in items],
            targets=[item.target for item in items],
            sources=[item.source for item in items],
            prompts=[item.prompt for item in items],
            masks=[item.gt_mask for item in items],
            generators=generators,
        )
    return [
        editor.edit(
            item.image,
            target=item.target,
            source=item.source,
            prompt=item.prompt,
            mask=item.gt_mask,
            generator=g,
            **({"instruction": item.instruction} if editor.capabilities.instructions else {}),
        )
        for item, g in zip(items, generators, strict=True)
    ]


@register_metric(Column("seconds", "s / image", ".2f"), Column("denoiser_evals", "UNet evals", ".0f"))
def measure(item: EditItem, result: EditResult, metrics: Mapping[str, Metric]) -> dict[str, Any]:
    """The row values of one edit: its timings, UNet evaluations and every metric's values."""
    values: dict[str, Any] = {f"seconds_{k}": v for k, v in result.timings.items()}
    values["seconds"] = result.timings.get("total", math.nan)
    values["denoiser_evals"] = result.denoiser_evals
    for metric in metrics.values():
        values.update(metric(item, result))
    return values


def run(
    editor: Editor,
    dataset: EditDataset,
    table: ResultsTable,
    spec: RunSpec,
    *,
    metrics: Mapping[str, Metric] | None = None,
    corpus_metrics: Mapping[str, CorpusMetric] | None = None,
    logger: RunLogger | None = None,
    done_elsewhere: Iterable[str] = (),
) -> pd.DataFrame:
    """Run ``editor`` over the items of ``spec.shard`` not yet done; return the summary of all rows.

    Each item's row is appended to ``table`` as soon as it is computed. An item whose loading,
    editing or metrics fail gets a row with ``status="failed"`` and the error, and the run
    goes on; a later run retries it. A file of the run folder that cannot be written (a full
    disk, a read-only folder) is no fault of the item: it stops the run with
    :class:`~benchmarks.run.writes.RunFolderError`.
    Each row records its item's fingerprint
    (:meth:`~benchmarks.data.items.EditDataset.fingerprint`); an item whose fingerprint changed
    since its rows were written is done again, its old rows set aside in ``<file>.stale``
    (:func:`~benchmarks.run.changed.set_aside_changed_rows`), and the run says how many.

    The first SIGINT (Ctrl-C) or SIGTERM finishes the batch in flight, writes its rows and raises
    :class:`~benchmarks.run.interrupts.Interrupted`; a second one raises
    :class:`~benchmarks.run.interrupts.Aborted` (a ``KeyboardInterrupt``) at once. Either way every
    row written before stays (rows are fsynced one by one).

    ``corpus_metrics`` are computed at the end over every item done so far (this run's and
    earlier runs'), from the edited images saved in ``spec.image_dir``, and join the summary.

    ``done_elsewhere``: items already done for this method and config in other results files of
    the run (other shards, or another ``shard.count``): skipped too, and counted by corpus metrics.

    ``spec.batch_size``: items edited together (throughput mode; the editor's ``edit_batch`` puts
    their UNet work into shared calls). Each item keeps its own seed, so its row is what it
    gets alone, up to floating-point effects of larger batches; its ``seconds*`` are its share
    of the batch's. A batch whose loading or editing fails is redone one item at a time, so
    only a bad item fails. Each item's row is appended as soon as its metrics are computed.
    """
    method, config_id = spec.method, spec.config_id
    if corpus_metrics and spec.image_dir is None:
        raise ValueError("Corpus metrics (FID, SFID) read the saved edits: keep save_images=true.")
    metrics = metrics or {}
    logger = logger or NullLogger()
    done_elsewhere = set(done_elsewhere)
    table.repair()  # a torn last line (a killed run) goes to <file>.torn; its item is done again
    mine = spec.shard.select(dataset.item_ids())
    changed = set_aside_changed_rows(table.path.parent, method, config_id, mine, dataset.fingerprint)
    _say_changed(changed)
    done = (table.completed(method, config_id) | done_elsewhere) - changed.items
    todo = [i for i in mine if i not in done]
    log.info("%s on %s: %d items to do, %d already done.", method, dataset.name, len(todo), len(done))
    written = 0

    def write(row: dict[str, Any]) -> None:
        nonlocal written
        table.append(row)
        logger.log_row(row)
        written += 1
        progress.update()

    with stop_after_batch() as stop, tqdm(total=len(todo), desc=f"{method} on {dataset.name}", unit="item") as progress:
        for start in range(0, len(todo), spec.batch_size):
            _edit_chunk(editor, dataset, todo[start : start + spec.batch_size], spec, metrics, write)
            if stop.signal is not None:
                raise Interrupted(stop.signal, written, len(todo) - written)
    summary = summarize(table.frame())
    for name, metric in (corpus_metrics or {}).items():
        done = sorted(table.completed(method, config_id) | done_elsewhere)
        log.info("Computing %s over %d edited images.", name, len(done))
        for key, value in metric.compute(ItemImages(spec.image_dir).saved_pairs(dataset, done)).items():
            summary.loc[(method, config_id), key] = value
    logger.log_summary(summary)
    return summary


def _say_changed(changed: SetAside) -> None:
    if changed.items:
        log.warning(
            "%d item(s) changed since their rows were written (image, mask or texts): %d row(s) moved to %s; these items are done again.",
            len(changed.items),
            changed.rows,
            ", ".join(p.name for p in changed.files),
        )
    if changed.without_fingerprint:
        log.info(
            "%d row(s) were written before rows recorded their item's fingerprint: kept, unchecked (a new run folder, or deleting them, redoes them).",
            changed.without_fingerprint,
        )


def _edit_chunk(
    editor: Editor,
    dataset: EditDataset,
    item_ids: Sequence[str],
    spec: RunSpec,
    metrics: Mapping[str, Metric],
    write: Callable[[dict[str, Any]], None],
) -> None:
    """Edit some items together and ``write`` each one's row as soon as its metrics are computed;
    when loading or editing the batch fails, each item again on its own."""
    rows = {item_id: spec.row(item_id, dataset.name) for item_id in item_ids}

    def finish(item_id: str, edited: Callable[[], tuple[EditItem, EditResult]], batch_size: int) -> None:
        row, started = rows[item_id], time.perf_counter()
        try:
            row[FINGERPRINT] = dataset.fingerprint(item_id)
            item, result = edited()
            _finish_row(row, item, result, measure(item, result, metrics), spec.image_dir, batch_size)
        except RunFolderError:
            raise
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


def _finish_row(row: dict[str, Any], item: EditItem, result: EditResult, values: dict[str, Any], image_dir: Path | None, batch_size: int) -> None:
    if image_dir is not None:
        with writing(image_dir):
            ItemImages(image_dir).save(item, result)
    row.update({f"meta.{k}": v for k, v in item.meta.items()})
    row.update(target=item.target, source=item.source)  # the edit, as reports print it
    row.update(status="ok", flags="; ".join(item.flags), **values)
    row["batch_size"] = batch_size  # items edited together: its seconds are a 1/batch_size share


@dataclass(frozen=True)
class Failures:
    """The failed rows of one method and config in a results table: how many of how many, and the first error."""

    items: int
    failed: int
    first_error: str | None = None

    @property
    def every_item(self) -> bool:
        return self.items > 0 and self.failed == self.items

    def line(self) -> str | None:
        """One line for the end of the run: an ``error:`` when every item failed, a ``warning:`` when some did."""
        if not self.failed:
            return None
        if self.every_item:
            return (
                f"error: every item failed ({self.failed} of {self.items}); the first error: {self.first_error}. "
                "The rows' error column says why for each; fix that and run the same command again."
            )
        return f"warning: {self.failed} of {self.items} items failed (the first error: {self.first_error}); run the same command again to retry them."


def failures(frame: pd.DataFrame, method: str, config_id: str) -> Failures:
    """The :class:`Failures` of ``method`` and ``config_id`` among ``frame``'s rows (one per key)."""
    if frame.empty:
        return Failures(0, 0)
    mine = frame[(frame["method"] == method) & (frame["config_id"] == config_id)]
    failed = mine[mine["status"] != "ok"]
    first = failed["error"].iloc[0] if "error" in failed and len(failed) else None
    return Failures(len(mine), len(failed), first)


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
