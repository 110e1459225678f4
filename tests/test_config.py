"""Every config composes, and every _target_ points at something importable."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

import run  # noqa: F401  (registers the run_key resolver)

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = {group.name: sorted(p.stem for p in group.glob("*.yaml")) for group in CONF.iterdir() if group.is_dir()}


def _targets(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for value in node.values() for t in _targets(value)]
    return []


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_each_config_composes_and_its_targets_import(group: str, option: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"{group}={option}"], return_hydra_config=True)
    OmegaConf.set_readonly(cfg, False)
    cfg.hydra.runtime.output_dir = "outputs/run"  # set by Hydra when a job starts
    HydraConfig.instance().set_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation, the run folder's included
    assert resolved["hydra"]["run"]["dir"].startswith("outputs/")
    for target in _targets(resolved.get(group, resolved)):  # experiment files are global: check every target
        module, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module), name), target


def test_the_method_config_holds_the_papers_defaults() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config")
    m = cfg.method
    assert (m.num_inference_steps, m.strength, m.guidance_scale, m.num_noises) == (50, 0.5, 7.5, 3)
    assert (m.th1, m.th2, m.threshold) == (0.9, 0.6, 0.2)
    assert cfg.seed == 4623523532252


@pytest.mark.parametrize("option", [o for o in GROUPS["method"] if "_target_" in OmegaConf.load(CONF / "method" / f"{o}.yaml")])
def test_each_method_config_spells_out_its_constructors_defaults(option: str) -> None:
    """The defaults live in the code and in conf/method: every argument with a default appears, with the same value
    (a composed method's parts, chosen by mask= and editor=, have none)."""
    node = OmegaConf.to_container(OmegaConf.load(CONF / "method" / f"{option}.yaml"))
    module, _, name = node.pop("_target_").rpartition(".")
    node.pop("_partial_")
    node.pop("defaults", None)
    node = {k: v for k, v in node.items() if not (isinstance(v, str) and v.startswith("${"))}
    parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    defaults = {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty and k != "inpaint_pipe"}
    assert node == defaults


@pytest.mark.parametrize("option", GROUPS["metrics"])
def test_every_per_item_metric_config_builds_an_item_metric(option: str) -> None:
    """The harness prepares every per-item metric with the split (ItemMetric.prepare), the corpus metrics apart."""
    from benchmarks.metrics.per_item import ItemMetric

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"metrics={option}"])
    for name, node in cfg.metrics.items():
        if name != "corpus":
            assert issubclass(get_class(node._target_), ItemMetric), name


def test_cheap_components_instantiate() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["logger=none", "dataset.n=3"])
    assert len(instantiate(cfg.dataset).item_ids()) == 3
    assert set(instantiate(cfg.metrics)) == {"mask_iou", "changed_region", "mask_boundary_f", "changing_rate", "background", "edit_success"}


@pytest.mark.parametrize("experiment", GROUPS["experiment"])
def test_each_experiment_sweeps_by_itself_into_the_folders_of_plain_commands(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}", "dataset=toy_shapes"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params, f"{experiment} should sweep with -m alone"
    assert "experiment" in cfg.hydra.job.config.override_dirname.exclude_keys
    assert cfg.dataset._target_.endswith("ToyShapesSplit"), "the command line's dataset wins over the experiment's"


def test_the_phi_ablation_sweeps_the_papers_values() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=ablation_phi"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params["method.threshold"] == "0.1,0.2,0.3"
    assert cfg.hydra.runtime.choices.method == "instdiffedit" and cfg.hydra.runtime.choices.dataset == "editing_mask"


def _run_dir(*overrides: str) -> Path:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return Path(OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"])


def test_a_path_in_an_override_names_one_folder_and_plain_overrides_keep_their_names() -> None:
    root = _run_dir("dataset=editing_mask", "dataset.root=/data/em/", "method.threshold=0.3")
    assert root.parent == Path("outputs", "sd14", "editing_mask", "instdiffedit")
    assert root.name == "dataset.root=%2Fdata%2Fem%2F,method.threshold=0.3"
    assert _run_dir("dataset=imagenet", "dataset.root=/data/em") != _run_dir("dataset=imagenet", "dataset.root=%2Fdata%2Fem"), "one to one"
    assert _run_dir("dataset.n=4", "method.threshold=0.3").name == "dataset.n=4,method.threshold=0.3"
    assert _run_dir().name == "default"


def test_a_long_override_keeps_a_readable_start_and_a_hash_within_the_file_name_limit() -> None:
    a, b = (_run_dir("dataset=imagenet", f"dataset.root=/data/{'x' * 300}{end}") for end in "ab")
    assert a != b and a.name.startswith("dataset.root=%2Fdata%2Fxxx")
    assert len(a.name.encode()) <= 200 and len(a.parts) == len(b.parts) == 5


def _model_choice(*overrides: str) -> str:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.runtime.choices.model


GENERATED_SPLITS = {"toy_shapes", "synthetic"}  # made in code for the toy and tiny models; every other split is photographs


@pytest.mark.parametrize("dataset", sorted(set(GROUPS["dataset"]) - GENERATED_SPLITS))
def test_a_real_split_selects_the_papers_models_unless_the_command_line_names_one(dataset: str) -> None:
    assert _model_choice(f"dataset={dataset}") == "sd14"
    assert _model_choice(f"dataset={dataset}", "model=toy") == "toy"
    assert _model_choice("model=tiny", f"dataset={dataset}") == "tiny"
    if f"table_{dataset}" in GROUPS["experiment"]:
        assert _model_choice(f"experiment=table_{dataset}") == "sd14"


def test_the_toy_world_keeps_the_toy_model() -> None:
    assert _model_choice() == "toy" and _model_choice("experiment=table_toy") == "toy"


@pytest.mark.parametrize("option", GROUPS["model"])
def test_each_model_config_names_its_family_and_its_loader_takes_it(option: str) -> None:
    """The harness refuses a method that does not run on the model's family from ``model.family``, before loading."""
    from instdiffedit.backbones import FAMILY_NAMES

    node = OmegaConf.load(CONF / "model" / f"{option}.yaml")
    assert node.family in FAMILY_NAMES
    module, _, name = node._target_.rpartition(".")
    assert "family" in inspect.signature(getattr(importlib.import_module(module), name)).parameters
