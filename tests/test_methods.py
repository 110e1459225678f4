"""The methods, declared on their classes: every method config is declared once, the paper tables sweep
what the declarations say applies, the speed benchmark builds each method from its config, and each
method declares what it can do."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from test_goldens import EXPECTED

import run  # noqa: F401  (registers the config's resolvers)
from baselines.instruction_editors import InstructionEditor
from baselines.pipeline_editor import PipelineEditor
from benchmarks.methods import all_methods, editor_class
from benchmarks.perf.speed.methods import TIMED, build_editor
from instdiffedit import Capabilities
from instdiffedit.backbones import ALL_FAMILIES

CONF = Path(__file__).resolve().parents[1] / "conf"
TABLES = sorted(p.stem for p in (CONF / "experiment").glob("table_*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_every_method_config_is_declared_by_a_class_once() -> None:
    names = [method.name for method in all_methods()]
    assert len(set(names)) == len(names)
    assert set(names) == {p.stem for p in (CONF / "method").glob("*.yaml")}


@pytest.mark.parametrize("experiment", TABLES)
def test_each_paper_table_sweeps_every_method_that_applies_in_the_declared_order(experiment: str) -> None:
    """A table compares the method with every baseline that runs on its model's family and, on splits
    with masks, the upper bound; the toy split's table shows the ablation too (compositions have their
    own grid, experiment=mask_x_editor)."""
    cfg = _compose(f"experiment={experiment}")
    has_masks = get_object(cfg.dataset._target_).has_masks
    expected = [
        m.name
        for m in all_methods()
        if (m.role != "ablation" or experiment == "table_toy")
        and (m.role != "upper bound" or has_masks)
        and m.role != "composition"
        and cfg.model.family in editor_class(m.name).capabilities.families
    ]
    assert cfg.hydra.sweeper.params.method.split(",") == expected


@pytest.mark.parametrize("method", [m for m in all_methods() if m.quick or m.warmup])
def test_the_quick_and_warm_up_overrides_name_settings_of_the_methods_config(method) -> None:
    for overrides in (method.quick, method.warmup):
        cfg = _compose(f"method={method.name}", *overrides)
        for override in overrides:
            key, _, value = override.partition("=")
            assert str(cfg.method[key.removeprefix("method.")]) == value


@pytest.mark.parametrize("method", TIMED)
def test_the_speed_benchmark_builds_each_method_from_its_config(tiny_family, method: str) -> None:
    # the tiny SD model where the method runs on it; the instruction editors' own families else
    family = next(f for f in ("sd", "sd3", "flux_kontext", "qwen_image_edit") if f in editor_class(method).capabilities.families)
    editor = build_editor(method, tiny_family(family), quick=False)
    assert type(editor) is get_object(_compose(f"method={method}").method._target_)


@pytest.mark.parametrize("method", [m.name for m in all_methods()])
def test_each_method_declares_its_capabilities_on_its_own_class(method: str) -> None:
    """Declared, not inherited unseen nor probed: ``batched`` says exactly whether it has ``edit_batch``."""
    cls = editor_class(method)
    assert isinstance(cls.__dict__.get("capabilities"), Capabilities), f"{cls.__name__} declares no capabilities"
    assert cls.capabilities.families <= ALL_FAMILIES and cls.capabilities.families
    assert cls.capabilities.batched == callable(getattr(cls, "edit_batch", None))


def test_a_method_declares_mask_history_exactly_when_its_golden_edits_record_one() -> None:
    for case, expected in EXPECTED.items():
        declared = editor_class(case.split(",")[0]).capabilities.mask_history
        assert declared == (expected["history"] is not None), case


def test_only_the_upper_bound_needs_ground_truth_masks_and_only_pipeline_backed_methods_miss_the_fast_paths() -> None:
    needs = {m.name for m in all_methods() if editor_class(m.name).capabilities.needs_ground_truth_mask}
    assert needs == {m.name for m in all_methods() if m.role == "upper bound"} == {"oracle_inpaint"}
    for method in all_methods():
        cls = editor_class(method.name)
        assert cls.capabilities.fast_paths == (not issubclass(cls, (PipelineEditor, InstructionEditor))), method.name
