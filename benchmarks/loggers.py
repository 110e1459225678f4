"""Experiment loggers for the runner: W&B, or nothing. The results file never depends on them."""

from __future__ import annotations

import os
from typing import Any, Protocol

import pandas as pd


class RunLogger(Protocol):
    def start(self, name: str, group: str, config: dict[str, Any]) -> None: ...

    def log_row(self, row: dict[str, Any]) -> None: ...

    def log_summary(self, summary: pd.DataFrame) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """``logger=none``: log nothing."""

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        pass

    def log_row(self, row: dict[str, Any]) -> None:
        pass

    def log_summary(self, summary: pd.DataFrame) -> None:
        pass

    def close(self) -> None:
        pass


class WandbLogger:
    """Logs each row's numbers as a step and the summary as run summary values.

    ``mode`` defaults to offline: runs sync later with ``wandb sync``. Set WANDB_MODE=online
    (or ``logger.mode=online``) to stream.
    """

    def __init__(self, project: str, *, mode: str | None = None, dir: str | None = None) -> None:
        self.project = project
        self.mode = mode or os.environ.get("WANDB_MODE", "offline")
        self.dir = dir
        self.run = None

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=self.project, mode=self.mode, dir=self.dir, name=name, group=group, config=config, reinit="finish_previous"
        )

    def log_row(self, row: dict[str, Any]) -> None:
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(numbers)

    def log_summary(self, summary: pd.DataFrame) -> None:
        for index, values in summary.to_dict(orient="index").items():
            prefix = "/".join(map(str, index if isinstance(index, tuple) else (index,)))
            for key, value in values.items():
                self.run.summary[f"{prefix}/{key}"] = value

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
