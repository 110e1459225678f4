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

from benchmarks.downloads import DownloadError
from benchmarks.interrupts import Aborted, Interrupted
from benchmarks.merge import completed_elsewhere
from benchmarks.metrics import MetricUnavailableError
from benchmarks.models import SPEED_OPTIONS, ModelUnavailableError
from benchmarks.references import reference_rows
from benchmarks.report.figures import run_grid
from benchmarks.results import ResultsTable
from benchmarks.runner import Shard, config_hash, run
from benchmarks.sharding import write_item_list
from benchmarks.splits import MissingFilesError

COLUMN_NOTES = {
    "mask_iou": "IoU (%) of the method's binary mask with the ground truth at image resolution; n/a without a mask.",
    "changing_rate": "mean |pixel change| inside the ground-truth mask / mean |pixel change| outside it "
    "(our definition: the paper reports the number without a formula).",
    "edit_success": "toy split: share of edits whose target (colour and shape, or background colour) is recognised in the edited region.",
}
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

    The config was checked before the run started (``benchmarks.callbacks.ValidateConfig``).
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
        for metric in metrics.values():  # optional hook: metrics that need to know the split
            if hasattr(metric, "prepare"):
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
    config_id = config_hash(identity)
    try:
        summary = run(
            editor,
            dataset,
            ResultsTable(out / shard.results_name),
            method=choices["method"],
            config_id=config_id,
            params=params,
            master_seed=cfg.seed,
            shard=shard,
            metrics=metrics,
            corpus_metrics=corpus_metrics,
            logger=logger,
            image_dir=out / "images" if cfg.save_images else None,
            done_elsewhere=completed_elsewhere(out, choices["method"], config_id, shard.results_name),
            batch_size=cfg.get("batch_size", 1),
        )
        if cfg.save_images:
            logger.log_figure("qualitative_grid", lambda: run_grid(out, choices["method"]))
    except (Interrupted, Aborted) as stopped:
        print(f"\n{stopped}", file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None
    finally:
        logger.close()
    summary.to_csv(out / shard.file_name("summary", "csv"))
    shown = summary
    if hasattr(dataset, "reference_masks"):  # trivial masks' IoU on the same items, for scale
        shown = pd.concat([summary, reference_rows(dataset, shard.select(dataset.item_ids()))])
    print(f"\nResults: {out / shard.results_name}\n")
    print(shown.to_string(na_rep="n/a", float_format=lambda v: f"{v:.3f}"))
    for column, definition in COLUMN_NOTES.items():
        if column in summary:
            print(f"{column}: {definition}")
    return summary


HYDRA_SAVED_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
"""What Hydra saves into a job's ``output_subdir`` when the job starts."""


def discard_unstarted_job(hydra_cfg: DictConfig, stop: Path) -> None:
    """Remove what Hydra wrote for a job that never started, if that is all its folder holds.

    Hydra creates the job's folder, its ``output_subdir`` (``.hydra``) and its log file before
    the job runs. When the folder holds nothing else (no results of an earlier run), those are
    removed, and then every folder left empty up to ``stop`` (the output root), so a run that
    never started leaves no folder behind.
    """
    out = Path(hydra_cfg.runtime.output_dir).resolve()
    own: list[Path] = []
    log_file = OmegaConf.select(hydra_cfg, "job_logging.handlers.file.filename")
    if log_file is not None:
        own.append(Path(log_file).resolve())
    saved = None if hydra_cfg.output_subdir is None else (out / hydra_cfg.output_subdir).resolve()
    if saved is not None:
        own += [saved / name for name in HYDRA_SAVED_FILES]
    if not out.is_dir() or any(p not in own for p in out.rglob("*") if not p.is_dir()):
        return
    for handler in list(logging.getLogger().handlers):  # Hydra's file handler holds the log open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve() in own:
            handler.close()
            logging.getLogger().removeHandler(handler)
    for path in own:
        path.unlink(missing_ok=True)
    stop, folder = stop.resolve(), saved or out
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            break
        folder = folder.parent


def _log_device(device: str) -> None:
    """Say where this job computes; under ``submitit_local`` without GPUs, say why it is the CPU.

    The plain ``submitit_local`` launcher hands its jobs an empty ``CUDA_VISIBLE_DEVICES`` unless
    ``gpus_per_node`` is set, so on a GPU machine the jobs would quietly run on the CPU.
    """
    from benchmarks.models import resolve_device

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
