"""Wires a composed Hydra config into a benchmark run: the only module that reads the config."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from benchmarks.data.downloads import DownloadError
from benchmarks.data.files import MissingFilesError
from benchmarks.metrics.columns import column_notes
from benchmarks.metrics.references import reference_rows
from benchmarks.metrics.weights import MetricUnavailableError
from benchmarks.models.loading import SPEED_OPTIONS, ModelUnavailableError
from benchmarks.plugins import load_plugins
from benchmarks.run.folder import RunFolder, Shard, discard_unstarted_job
from benchmarks.run.grid import run_grid
from benchmarks.run.interrupts import Aborted, Interrupted
from benchmarks.run.item_view import item_view
from benchmarks.run.lock import RunFolderLocked, WriterLock
from benchmarks.run.results import ResultsFileError, ResultsTable
from benchmarks.run.runner import RunSpec, config_hash, failures, run
from benchmarks.run.writes import RunFolderError, writing

USER_FIXABLE = (ModelUnavailableError, DownloadError, MissingFilesError, MetricUnavailableError)

log = logging.getLogger(__name__)


def _identity(cfg: DictConfig) -> dict:
    """What makes results comparable: method, model and dataset settings and the seed (not the device
    nor the speed options, which leave results the same)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    model = {k: v for k, v in resolved["model"].items() if k not in ("device", *SPEED_OPTIONS)}
    return {"method": resolved["method"], "model": model, "dataset": resolved["dataset"], "seed": cfg.seed}


def run_from_config(cfg: DictConfig) -> pd.DataFrame:
    """Run the configured method on the configured split; return (and print) the summary.

    The config was checked before the run started (``benchmarks.run.callbacks.ValidateConfig``).
    The shard's results file has one writer: a second process on the same run folder and shard
    stops at once with one ``error:`` line naming the holder (:mod:`benchmarks.run.lock`).
    What can only fail once loaded (weights that cannot be had, a setting the model refuses)
    ends the run with one ``error:`` line before any editing, and the run folder is removed
    again when it holds nothing but what Hydra wrote for this job; so does Ctrl-C while loading.
    A file of the run folder that cannot be written, or a results file this harness did not
    write, ends it with one ``error:`` line too. A single run whose items all failed exits
    with 1 after its summary (a sweep's job returns, and the sweep's summary says so).
    """
    load_plugins(cfg.get("plugins"))  # where the config check ran in this process, it loaded them already
    hydra_cfg = HydraConfig.get()
    out = RunFolder(hydra_cfg.runtime.output_dir)
    shard = Shard(cfg.shard.index, cfg.shard.count)
    lock = WriterLock(out.lock_file(shard))
    try:
        lock.acquire()
    except (RunFolderLocked, RunFolderError) as error:
        sys.exit(f"error: {error}")
    try:
        return _run_locked(cfg, hydra_cfg, out, shard, lock)
    finally:
        lock.release()


def _run_locked(cfg: DictConfig, hydra_cfg: DictConfig, out: RunFolder, shard: Shard, lock: WriterLock) -> pd.DataFrame:
    choices = hydra_cfg.runtime.choices
    _log_device(cfg.device)
    try:
        dataset = _build(cfg.dataset)
        metrics = dict(_build(cfg.metrics))  # every model-backed metric loads its weights here, before any editing
        corpus_metrics = metrics.pop("corpus", None) or {}
        for metric in metrics.values():  # what a metric needs from the split (ItemMetric.prepare)
            metric.prepare(dataset)
        pipes = _build(cfg.model)
        try:
            editor = instantiate(cfg.method)(pipes.base, pipes.inpaint)
        except ValueError as error:  # a setting this model refuses (e.g. a resolution off its VAE factor)
            sys.exit(f"error: method={choices['method']}: {error}")
    except (SystemExit, KeyboardInterrupt):  # nothing was edited: leave no trace of this job
        lock.release(remove=True)
        discard_unstarted_job(hydra_cfg, stop=Path(cfg.paths.output_root))
        raise
    if (split_mask := editor.capabilities.split_mask) is not None:  # the centred disc: the split's (checked before the run)
        editor.use_split_mask(dataset.reference_masks()[split_mask])
    identity = _identity(cfg)
    params = {
        **_method_params(identity["method"], choices),
        **{f"dataset.{k}": v for k, v in identity["dataset"].items() if k not in ("_target_", "cache_dir")},
        "model": choices["model"],
    }
    spec = RunSpec(
        method=choices["method"],
        config_id=config_hash(identity),
        master_seed=cfg.seed,
        params=params,
        shard=shard,
        batch_size=cfg.get("batch_size", 1),
        image_dir=out.images.path if cfg.save_images else None,
    )
    table = ResultsTable(out.results_file(shard))
    logger = instantiate(cfg.logger)
    try:
        dataset.prepare(pipes.base)
        out.write_item_ids(dataset.item_ids())  # lets a merge of the shards name the items still missing
        logger.start(
            name=f"{choices['method']}-{choices['dataset']}-{choices['model']}",
            group=choices["dataset"],
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        summary = run(
            editor,
            dataset,
            table,
            spec,
            metrics=metrics,
            corpus_metrics=corpus_metrics,
            logger=logger,
            done_elsewhere=out.completed_elsewhere(spec.method, spec.config_id, shard.results_name),
        )
        if cfg.save_images:
            logger.log_figure("qualitative_grid", lambda: run_grid(out.path, choices["method"]))
            logger.log_items("items", lambda: item_view(_own_rows(out.results_file(shard), spec), [out.path]))
        with writing(out.summary_file(shard)):
            summary.to_csv(out.summary_file(shard))
    except (Interrupted, Aborted) as stopped:
        print(f"\n{stopped}", file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None
    except (RunFolderError, ResultsFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        logger.close()
    shown = summary
    if dataset.reference_masks():  # trivial masks' IoU on the same items, for scale
        shown = pd.concat([summary, reference_rows(dataset, shard.select(dataset.item_ids()))])
    print(f"\nResults: {out.results_file(shard)}\n")
    print(shown.to_string(na_rep="n/a", float_format=lambda v: f"{v:.3f}"))
    for note in column_notes(summary.columns):
        print(note)
    failed = failures(table.frame(), spec.method, spec.config_id)
    if (line := failed.line()) is not None:
        print(line, file=sys.stderr)
    if failed.every_item and hydra_cfg.mode != RunMode.MULTIRUN:  # a sweep goes on; its summary ends it with 1
        raise SystemExit(1)
    return summary


def _method_params(method: dict[str, Any], choices: Any) -> dict[str, Any]:
    """The method's settings as the rows' ``param.*``; a part of a composed method (a ``_target_`` node:
    its mask source, its editor) by its option name (``mask``: ``oracle``), its settings being in the
    config id (as ``param.*`` they would read as swept settings wherever two parts differ)."""
    return {key: choices.get(key) if isinstance(value, dict) and "_target_" in value else value for key, value in method.items() if not key.startswith("_")}


def _own_rows(results: Path, spec: RunSpec) -> pd.DataFrame:
    """The rows of ``spec``'s method and configuration in a results file (a folder may hold older configurations' too)."""
    frame = ResultsTable(results).frame()
    if frame.empty:
        return frame
    return frame[(frame["method"] == spec.method) & (frame["config_id"] == spec.config_id)]


def _log_device(device: str) -> None:
    """Say where this job computes; under ``submitit_local`` without GPUs, say why it is the CPU.

    The plain ``submitit_local`` launcher hands its jobs an empty ``CUDA_VISIBLE_DEVICES`` unless
    ``gpus_per_node`` is set, so on a GPU machine the jobs would quietly run on the CPU.
    """
    from benchmarks.devices import resolve_device

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    log.info("Device: %s (device=%s, CUDA_VISIBLE_DEVICES=%s).", resolve_device(device), device, visible)
    if os.environ.get("SUBMITIT_EXECUTOR") == "local" and visible == "" and device == "auto":
        log.warning("This submitit_local job was given no GPU and runs on the CPU; use hydra/launcher=local_gpus for one GPU per job.")


def _build(node: DictConfig) -> Any:
    """Instantiate a config node; a missing download, file or model ends the run with its one sentence.

    These errors name the file or weights and the config key that fixes them, so a traceback
    would only hide the sentence.
    """
    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, USER_FIXABLE):
            sys.exit(f"error: {error.__cause__}")
        raise
