"""Run an editing method on a split and measure it.

python run.py model=tiny dataset=synthetic
python run.py method=instdiffedit dataset=editing_mask method.threshold=0.3
python run.py -m method.threshold=0.1,0.2,0.3
python run.py -m hydra/launcher=local_gpus shard.count=2 'shard.index=range(0,2)'   # one shard per GPU
"""

from __future__ import annotations

import sys

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmarks.run.folder import run_folder_name, shard_tag
from benchmarks.run.gpus import job_gpu, launcher_gpus

# The run folder is named by the overrides (paths in them escaped); a run without any goes to ".../default".
OmegaConf.register_new_resolver("run_key", run_folder_name, replace=True)
# Shards share the run folder; Hydra's per-job files carry the shard's tag so they never collide.
OmegaConf.register_new_resolver("shard_tag", shard_tag, replace=True)
# hydra/launcher=local_gpus: one GPU per job (Hydra carries resolvers into launched jobs).
OmegaConf.register_new_resolver("launcher_gpus", launcher_gpus, replace=True)
OmegaConf.register_new_resolver("job_gpu", job_gpu, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> pd.DataFrame:
    from benchmarks.run.harness import (
        run_from_config,  # heavy imports only once Hydra has parsed the command line
    )

    return run_from_config(cfg)


if __name__ == "__main__":
    from benchmarks.run.targets import command_line_target_errors

    if errors := command_line_target_errors([arg for arg in sys.argv[1:] if not arg.startswith("-")]):
        print("\n".join(f"error: {error}" for error in errors), file=sys.stderr)
        raise SystemExit(2)
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C outside the item loop (which stops after its batch): while starting or loading
        print("\nerror: stopped by Ctrl-C (SIGINT); every row written before is kept: run the same command again to resume.", file=sys.stderr)
        raise SystemExit(130) from None
