"""The project's own components declare themselves where they are defined, as a plugin's do: the
reports, summaries and checks read these declarations, and what they declare holds together."""

from __future__ import annotations

from benchmarks.data.items import split_layouts
from benchmarks.metrics.columns import declared_columns
from benchmarks.report.tables import metric_display, table_order
from instdiffedit.backbones import BACKBONE_FAMILIES, BACKBONES, FAMILY_NAMES


def test_every_column_a_split_declares_for_its_table_is_declared_by_a_metric() -> None:
    columns = declared_columns()
    for layout in split_layouts().values():
        assert [c for c in layout.columns if c not in columns] == [], layout.name


def test_the_papers_splits_come_first_in_the_reports_in_the_papers_order() -> None:
    names = ["toy_shapes", "pie_bench", "synthetic", "imagen", "my_photos", "imagenet", "editing_mask"]
    assert sorted(names, key=table_order) == ["editing_mask", "imagenet", "imagen", "pie_bench", "my_photos", "synthetic", "toy_shapes"]


def test_a_declared_column_heads_its_table_with_its_label_and_an_undeclared_one_with_its_name() -> None:
    assert metric_display("mask_iou") == ("mask IoU (%)", ".1f")
    assert metric_display("seconds") == ("s / image", ".2f"), "the runner declares the cost columns it writes"
    assert metric_display("not_a_metric") == ("not_a_metric", ".3g")


def test_each_backbone_family_is_declared_on_its_class_with_its_pipelines_and_name() -> None:
    assert BACKBONE_FAMILIES == {"sd", "sdxl", "sd3", "flux"} <= {backbone.family for backbone in BACKBONES.values()}
    assert all(backbone.family in FAMILY_NAMES for backbone in BACKBONES.values())
