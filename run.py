"""Run an editing method on a split and measure it.

    python run.py model=tiny dataset=synthetic
    python run.py method=instdiffedit dataset=editing_mask method.threshold=0.3
    python run.py -m method.threshold=0.1,0.2,0.3
"""

from __future__ import annotations

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

# The run folder is named by the overrides; a run without any goes to ".../default".
OmegaConf.register_new_resolver("run_key", lambda overrides: overrides or "default", replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> pd.DataFrame:
    from benchmarks.harness import run_from_config  # heavy imports only once Hydra has parsed the command line

    return run_from_config(cfg)


if __name__ == "__main__":
    main()
