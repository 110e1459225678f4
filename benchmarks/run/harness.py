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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from benchmarks.data.downloads import DownloadError
from benchmarks.data.files import MissingFilesError
from benchmarks.metrics.columns import column_notes
from benchmarks.metrics.references import reference_rows
from benchmarks.metrics.weights import MetricUnavailableError
from benchmarks.models.loading import SPEED_OPTIONS, ModelUnavailableError
from benchmarks.run.folder import (
    IMAGES_DIR,
    Shard,
    completed_elsewhere,
    discard_unstarted_job,
    write_item_list,
)
from benchmarks.run.grid import run_grid
from benchmarks.run.interrupts import Aborted, Interrupted
from benchmarks.run.item_view import item_view
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, config_hash, run

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
    What can only fail once loaded (weights that cannot be had, a setting the model refuses)
    ends the run with one ``error:`` line before any editing, and the run folder is removed
    again when it holds nothing but what Hydra wrote for this job.
    """
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    out = Path(hydra_cfg.runtime.output_dir)
    shard = Shard(cfg.shard.index, cfg.shard.count)
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
    except SystemExit:
        discard_unstarted_job(hydra_cfg, stop=Path(cfg.paths.output_root))
        raise
    dataset.prepare(pipes.base)
    write_item_list(out, dataset.item_ids())  # lets a merge of the shards name the items still missing
    identity = _identity(cfg)
    params = {
        **{k: v for k, v in identity["method"].items() if not k.startswith("_")},
        **{f"dataset.{k}": v for k, v in identity["dataset"].items() if k not in ("_target_", "cache_dir")},
        "model": choices["model"],
    }
    logger = instantiate(cfg.logger)
    logger.start(
        name=f"{choices['method']}-{choices['dataset']}-{choices['model']}",
        group=choices["dataset"],
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    spec = RunSpec(
        method=choices["method"],
        config_id=config_hash(identity),
        master_seed=cfg.seed,
        params=params,
        shard=shard,
        batch_size=cfg.get("batch_size", 1),
        image_dir=out / IMAGES_DIR if cfg.save_images else None,
    )
    try:
        summary = run(
            editor,
            dataset,
            ResultsTable(out / shard.results_name),
            spec,
            metrics=metrics,
            corpus_metrics=corpus_metrics,
            logger=logger,
            done_elsewhere=completed_elsewhere(out, spec.method, spec.config_id, shard.results_name),
        )
        if cfg.save_images:
            logger.log_figure("qualitative_grid", lambda: run_grid(out, choices["method"]))
            logger.log_items("items", lambda: item_view(_own_rows(out / shard.results_name, spec), [out]))
    except (Interrupted, Aborted) as stopped:
        print(f"\n{stopped}", file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None
    finally:
        logger.close()
    summary.to_csv(out / shard.summary_name)
    shown = summary
    if dataset.reference_masks():  # trivial masks' IoU on the same items, for scale
        shown = pd.concat([summary, reference_rows(dataset, shard.select(dataset.item_ids()))])
    print(f"\nResults: {out / shard.results_name}\n")
    print(shown.to_string(na_rep="n/a", float_format=lambda v: f"{v:.3f}"))
    for note in column_notes(summary.columns):
        print(note)
    return summary


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
        log.warning(
            "This submitit_local job was given no GPU and runs on the CPU; "
            "use hydra/launcher=local_gpus for one GPU per job."
        )


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
