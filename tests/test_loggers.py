"""The W&B logger: per-row numbers, the rows as one table, the summary, figures as images, and the
item view (the results browser's) as a table of thumbnails."""

from __future__ import annotations

import sys
import types

import pandas as pd
import PIL.Image
import pytest
from matplotlib.figure import Figure

from benchmarks.run.folder import EDIT, INPUT, MASK, ItemImages
from benchmarks.run.item_view import IMAGE_COLUMNS, THUMBNAIL_SIDE, item_view
from benchmarks.run.loggers import NullLogger, WandbLogger


class FakeRun:
    def __init__(self) -> None:
        self.logged: list[dict] = []
        self.summary: dict = {}
        self.finished = False

    def log(self, values: dict) -> None:
        self.logged.append(values)

    def finish(self) -> None:
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A stand-in ``wandb`` module that records what the logger hands it."""
    run = FakeRun()

    class Table:
        def __init__(self, dataframe: pd.DataFrame) -> None:
            self.dataframe = dataframe

    class Image:
        def __init__(self, image: PIL.Image.Image) -> None:
            self.image = image

    module = types.SimpleNamespace(init=lambda **kwargs: run, Table=Table, Image=Image, run=run)
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_the_run_logs_its_rows_as_one_table_its_summary_and_its_grid(fake_wandb) -> None:
    logger = WandbLogger("p", mode="offline")
    logger.start("name", "group", {})
    rows = [
        {"item_id": "a", "status": "ok", "mask_iou": 50.0, "seconds": 1.0},
        {"item_id": "b", "status": "failed", "error": "RuntimeError: boom", "seconds": 0.5},
    ]
    for row in rows:
        logger.log_row(row)
    logger.log_summary(pd.DataFrame({"mask_iou": [50.0]}, index=pd.MultiIndex.from_tuples([("m", "c")])))
    figure = Figure(figsize=(1, 1))
    figure.subplots().plot([0, 1])
    logger.log_figure("qualitative_grid", lambda: figure)
    logger.close()

    run = fake_wandb.run
    assert run.logged[0] == {"mask_iou": 50.0, "seconds": 1.0}
    table = next(v["rows"] for v in run.logged if "rows" in v)
    assert list(table.dataframe["item_id"]) == ["a", "b"] and table.dataframe.loc[1, "error"] == "RuntimeError: boom"
    assert run.summary == {"m/c/mask_iou": 50.0}
    image = next(v["qualitative_grid"] for v in run.logged if "qualitative_grid" in v).image
    assert image.width > 0 and image.height > 0
    assert run.finished


def test_a_logger_that_logs_nothing_never_draws() -> None:
    def draw() -> Figure:
        raise AssertionError("the figure should not be drawn")

    NullLogger().log_figure("grid", draw)
    NullLogger().log_items("items", draw)


def test_the_run_logs_its_item_view_as_a_table_of_thumbnails(fake_wandb, tmp_path) -> None:
    images = ItemImages(tmp_path / "images")
    images.file("a", INPUT).parent.mkdir(parents=True)
    PIL.Image.new("RGB", (400, 300), (200, 40, 40)).save(images.file("a", INPUT))
    PIL.Image.new("RGB", (400, 300), (40, 40, 200)).save(images.file("a", EDIT))
    PIL.Image.new("L", (64, 64), 255).save(images.file("a", MASK))
    rows = pd.DataFrame(
        [
            {"item_id": "a", "status": "ok", "target": "a dog", "source": "a cat", "flags": "", "mask_iou": 50.0, "seconds": 1.0},
            {"item_id": "b", "status": "failed", "error": "RuntimeError: boom", "seconds": 0.5},
        ]
    )
    logger = WandbLogger("p", mode="offline")
    logger.start("name", "group", {})
    logger.log_items("items", lambda: item_view(rows, [tmp_path]))

    table = next(v["items"] for v in fake_wandb.run.logged if "items" in v).dataframe
    assert list(table.columns[:11]) == ["item_id", "edit", "edit_type", "status", "flags", "error", *IMAGE_COLUMNS]
    assert table.loc[0, "edit"] == "a cat → a dog" and table.loc[1, "error"] == "RuntimeError: boom"
    assert table.loc[0, "mask_iou"] == 50.0 and pd.isna(table.loc[1, "mask_iou"])
    assert table.loc[0, "input"].image.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4), "thumbnails, not the saved images"
    assert table.loc[0, "mask"].image.size == (64, 64) and table.loc[0, "ground_truth"] is None
    assert table.loc[1, ["input", "mask", "output", "mask_steps"]].isna().all(), "a failed item has no images"
