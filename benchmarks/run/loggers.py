"""Experiment loggers for the runner: W&B, or nothing. The results file never depends on them."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import PIL.Image

from benchmarks.run.item_view import IMAGE_COLUMNS, view_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


class RunLogger(Protocol):
    def start(self, name: str, group: str, config: dict[str, Any]) -> None: ...

    def log_row(self, row: dict[str, Any]) -> None: ...

    def log_summary(self, summary: pd.DataFrame) -> None: ...

    def log_figure(self, name: str, draw: Callable[[], Figure | None]) -> None:
        """Log the figure ``draw()`` returns (if any); a logger that logs nothing never calls ``draw``."""

    def log_items(self, name: str, view: Callable[[], pd.DataFrame]) -> None:
        """Log the item view ``view()`` returns (:func:`benchmarks.run.item_view.item_view`) with its
        images; a logger that logs nothing never calls ``view``."""

    def close(self) -> None: ...


class NullLogger:
    """``logger=none``: log nothing."""

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        pass

    def log_row(self, row: dict[str, Any]) -> None:
        pass

    def log_summary(self, summary: pd.DataFrame) -> None:
        pass

    def log_figure(self, name: str, draw: Callable[[], Figure | None]) -> None:
        pass

    def log_items(self, name: str, view: Callable[[], pd.DataFrame]) -> None:
        pass

    def close(self) -> None:
        pass


class WandbLogger:
    """Logs each row's numbers as a step, the summary as run summary values, every row of the run
    as one ``wandb.Table`` (``rows``, logged with the summary), figures as images, and the item
    view as a ``wandb.Table`` whose image columns hold thumbnails (the results browser's view).

    ``mode`` defaults to offline: runs sync later with ``wandb sync``. Set WANDB_MODE=online
    (or ``logger.mode=online``) to stream. An online run that cannot start (no network, W&B's
    server unreachable, no login) logs offline instead, with one warning line: the run goes on.
    """

    def __init__(self, project: str, *, mode: str | None = None, dir: str | None = None) -> None:
        self.project = project
        self.mode = mode or os.environ.get("WANDB_MODE", "offline")
        self.dir = dir
        self.run = None
        self.rows: list[dict[str, Any]] = []

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        import wandb

        def init(mode: str) -> Any:
            return wandb.init(project=self.project, mode=mode, dir=self.dir, name=name, group=group, config=config, reinit="finish_previous")

        try:
            self.run = init(self.mode)
        except wandb.errors.Error as error:
            if self.mode != "online":
                raise
            reason = " ".join(str(error).split())  # one line, whatever W&B's message holds
            log.warning("W&B could not start online (%s); logging offline instead: sync later with `wandb sync`.", reason)
            self.mode = "offline"
            self.run = init(self.mode)

    def log_row(self, row: dict[str, Any]) -> None:
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(numbers)
        self.rows.append(row)

    def log_summary(self, summary: pd.DataFrame) -> None:
        import wandb

        if self.rows:
            # Columns of mixed types (a failed row's error, nan metrics) are logged as text, which wandb.Table accepts.
            frame = pd.DataFrame(self.rows)
            mixed = [c for c in frame if frame[c].map(type).nunique() > 1]
            frame[mixed] = frame[mixed].astype(str)
            self.run.log({"rows": wandb.Table(dataframe=frame)})
        for index, values in summary.to_dict(orient="index").items():
            prefix = "/".join(map(str, index if isinstance(index, tuple) else (index,)))
            for key, value in values.items():
                self.run.summary[f"{prefix}/{key}"] = value

    def log_figure(self, name: str, draw: Callable[[], Figure | None]) -> None:
        import wandb

        figure = draw()
        if figure is not None:  # rendered here, so W&B gets exactly the PNG the report would write
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
            buffer.seek(0)
            self.run.log({name: wandb.Image(PIL.Image.open(buffer))})

    def log_items(self, name: str, view: Callable[[], pd.DataFrame]) -> None:
        import wandb

        frame = view()
        if frame.empty:
            return
        for column in IMAGE_COLUMNS:
            frame[column] = [None if path is None else wandb.Image(view_image(path)) for path in frame[column]]
        self.run.log({name: wandb.Table(dataframe=frame)})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
