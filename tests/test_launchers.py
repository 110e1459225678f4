"""The launcher presets: SLURM and one-GPU-per-job on one machine, and shard-safe per-job files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import run  # noqa: F401  (registers the resolvers)
from benchmarks.run.gpus import job_gpu, launcher_gpus

CONF = Path(__file__).resolve().parents[1] / "conf"


def _hydra(*overrides: str, job_num: int = 0) -> dict:
    """The resolved ``hydra`` node of a multirun job composed with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    OmegaConf.set_readonly(cfg, False)
    cfg.hydra.runtime.output_dir = "outputs/run"
    cfg.hydra.job.num = job_num
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra, resolve=True)


def test_the_slurm_preset_asks_for_one_gpu_per_task_and_every_key_can_be_overridden() -> None:
    launcher = _hydra("hydra/launcher=slurm")["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["gpus_per_task"], launcher["tasks_per_node"], launcher["max_num_timeout"]) == (1, 1, 3)
    assert launcher["submitit_folder"].startswith("outputs/.submitit/") and launcher["submitit_folder"].endswith("/%j")
    custom = _hydra(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=h100",
        "hydra.launcher.gpus_per_task=2",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.array_parallelism=4",
    )["launcher"]
    assert (custom["partition"], custom["gpus_per_task"], custom["timeout_min"], custom["array_parallelism"]) == ("h100", 2, 30, 4)


def test_local_gpus_passes_this_process_gpus_on_and_gives_each_job_its_own(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    hydra = _hydra("hydra/launcher=local_gpus")
    assert hydra["launcher"]["_target_"].endswith("LocalLauncher")
    assert hydra["launcher"]["setup"] == ["export CUDA_VISIBLE_DEVICES=4,6"]
    # In the jobs, submitit's setup has exported "4,6"; Hydra then narrows each job to one GPU.
    assert [_hydra("hydra/launcher=local_gpus", job_num=n)["job"]["env_set"]["CUDA_VISIBLE_DEVICES"] for n in range(3)] == ["4", "6", "4"]


def test_gpu_lists_accept_ids_and_uuids_and_no_gpu_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa, GPU-bbbb")
    assert launcher_gpus() == "GPU-aaaa,GPU-bbbb" and job_gpu(1) == "GPU-bbbb"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match="hydra/launcher=submitit_local"):
        launcher_gpus()
    with pytest.raises(RuntimeError, match="Job 3 .* no GPU"):
        job_gpu(3)


def test_shards_share_the_run_folder_but_not_hydras_per_job_files() -> None:
    unsharded = _hydra("model=tiny")
    shards = [_hydra("model=tiny", "shard.count=2", f"shard.index={i}") for i in range(2)]
    assert unsharded["output_subdir"] == ".hydra"
    name = unsharded["job"]["name"]  # "run" when run.py runs
    assert unsharded["job_logging"]["handlers"]["file"]["filename"] == f"outputs/run/{name}.log"
    assert [s["sweep"]["subdir"] for s in shards] == [unsharded["sweep"]["subdir"]] * 2 == ["tiny/toy_shapes/instdiffedit/default"] * 2
    assert [s["output_subdir"] for s in shards] == [".hydra/shard-000-of-002", ".hydra/shard-001-of-002"]
    assert [s["job_logging"]["handlers"]["file"]["filename"] for s in shards] == [
        f"outputs/run/{name}.shard-000-of-002.log",
        f"outputs/run/{name}.shard-001-of-002.log",
    ]
