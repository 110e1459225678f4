"""One list of methods: every method config is in it, the paper tables sweep what it says applies,
and the speed benchmark builds each method from its config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object

import run  # noqa: F401  (registers the config's resolvers)
from benchmarks.methods import METHODS, editor_class
from benchmarks.perf import speed

CONF = Path(__file__).resolve().parents[1] / "conf"
TABLES = sorted(p.stem for p in (CONF / "experiment").glob("table_*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_list_names_every_method_config_once() -> None:
    names = [method.name for method in METHODS]
    assert len(set(names)) == len(names)
    assert set(names) == {p.stem for p in (CONF / "method").glob("*.yaml")}


@pytest.mark.parametrize("experiment", TABLES)
def test_each_paper_table_sweeps_every_method_that_applies_in_the_lists_order(experiment: str) -> None:
    """A table compares the method with every baseline that runs on its model's family and, on splits
    with masks, the upper bound; the toy split's table shows the ablation too."""
    cfg = _compose(f"experiment={experiment}")
    has_masks = get_object(cfg.dataset._target_).has_masks
    expected = [
        m.name for m in METHODS
        if (m.role != "ablation" or experiment == "table_toy") and (m.role != "upper bound" or has_masks)
        and cfg.model.family in editor_class(m.name).families
    ]
    assert cfg.hydra.sweeper.params.method.split(",") == expected


@pytest.mark.parametrize("method", [m for m in METHODS if m.quick])
def test_the_quick_overrides_name_settings_of_the_methods_config(method) -> None:
    cfg = _compose(f"method={method.name}", *method.quick)
    for override in method.quick:
        key, _, value = override.partition("=")
        assert str(cfg.method[key.removeprefix("method.")]) == value


@pytest.mark.parametrize("method", speed.TIMED)
def test_the_speed_benchmark_builds_each_method_from_its_config(tiny_family, method: str) -> None:
    family = next(f for f in ("sd", "sd3") if f in editor_class(method).families)  # the tiny SD model where the method runs on it
    editor = speed.build_editor(method, tiny_family(family), quick=False)
    assert type(editor) is get_object(_compose(f"method={method}").method._target_)
