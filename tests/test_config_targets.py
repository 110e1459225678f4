"""A run config builds only what the harness owns: any other ``_target_`` is one error line, and nothing
it names is imported or called, during the check or after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import run  # noqa: F401  (registers the resolvers)
from benchmarks.run.config_check import check_run_config
from benchmarks.run.targets import command_line_target_errors, owned_target, target_errors

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
OPTIONS = [(group.name, p.stem) for group in sorted(CONF.iterdir()) if group.is_dir() and group.name != "hydra" for p in sorted(group.glob("*.yaml"))]
LAUNCHERS = ["submitit_local", "submitit_slurm", *sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))]


def _config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["model=tiny", "dataset=synthetic", *overrides], return_hydra_config=True)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


@pytest.mark.parametrize(("group", "option"), [*OPTIONS, *(("hydra/launcher", launcher) for launcher in LAUNCHERS)])
def test_every_shipped_config_builds_only_owned_targets(group: str, option: str) -> None:
    assert target_errors(_config(f"{group}={option}")) == []


def test_a_dataset_that_opens_a_file_is_refused_before_the_file_is_touched(victim: Path) -> None:
    errors = check_run_config(_config("dataset._target_=builtins.open", f"+dataset.file={victim}", "+dataset.mode=w")).errors
    assert errors == [
        "dataset._target_=builtins.open: not a class or function of this project (instdiffedit, baselines, benchmarks) nor a launcher "
        "its configs name; the harness builds nothing else (pick a config of conf/, e.g. dataset=<name>)."
    ]
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "overrides",
    [
        ["+metrics.cleanup._target_=os.remove", "+metrics.cleanup.path={victim}"],  # a node the check does not build, the harness would
        ["metrics.mask_iou._target_=os.remove", "+metrics.mask_iou.path={victim}"],
        ["logger._target_=os.remove", "+logger.path={victim}"],
        ["model._target_=benchmarks.run.harness.os.remove", "+model.path={victim}"],  # a project path through an import
        ["method._target_=shutil.rmtree", "+method.path={victim}"],
        ["+hydra.callbacks.cleanup._target_=os.remove", "+hydra.callbacks.cleanup.path={victim}"],
        ["dataset._target_=${oc.env:HOME}"],  # an interpolation is no way around
    ],
)
def test_any_node_naming_a_callable_outside_the_project_is_one_line_naming_its_key(overrides: list[str], victim: Path) -> None:
    overrides = [o.replace("{victim}", str(victim)) for o in overrides]
    errors = check_run_config(_config(*overrides)).errors
    key = overrides[0].lstrip("+").split("=")[0]
    assert len(errors) == 1 and errors[0].startswith(f"{key}="), errors
    assert victim.read_text() == "precious"


def test_a_module_outside_the_project_is_never_imported(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(**kwargs):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert owned_target("planted.build") is None
    assert len(check_run_config(_config("dataset._target_=planted.build")).errors) == 1
    assert not marker.exists() and "planted" not in sys.modules


@pytest.mark.parametrize("path", ["benchmarks.run.harness.instantiate", "benchmarks.run.harness.os", "benchmarks.no_such_module.X", "benchmarks..x", 3])
def test_only_classes_and_functions_defined_in_the_project_are_owned(path: object) -> None:
    assert owned_target(path) is None


def test_the_projects_classes_and_the_named_launchers_are_owned() -> None:
    from benchmarks.data.synthetic import SyntheticDataset

    assert owned_target("benchmarks.data.synthetic.SyntheticDataset") is SyntheticDataset
    assert owned_target("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher").__name__ == "SlurmLauncher"


def test_targets_typed_on_the_command_line_are_checked_in_keys_dicts_and_sweeps() -> None:
    errors = command_line_target_errors(
        [
            "+hydra.callbacks.evil._target_=os.remove",
            "+hydra.callbacks.other={_target_:os.system,command:true}",
            "dataset._target_=benchmarks.data.synthetic.SyntheticDataset,builtins.open",
            "method.threshold=0.1,0.2",
            "dataset=synthetic",
        ]
    )
    assert [error.split(":")[0] for error in errors] == [
        "hydra.callbacks.evil._target_=os.remove",
        "hydra.callbacks.other._target_=os.system",
        "dataset._target_=builtins.open",
    ]
    assert command_line_target_errors(["method._target_=baselines.SDEdit", "not an override ((("]) == []


def test_a_hydra_callback_typed_on_the_command_line_never_runs(tmp_path: Path) -> None:
    """Hydra builds its callbacks before any of them runs: run.py checks the command line first."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "model=tiny",
            "dataset=synthetic",
            "logger=none",
            f"paths.output_root={tmp_path / 'outputs'}",
            "+hydra.callbacks.evil._target_=os.remove",
            f"+hydra.callbacks.evil.path={victim}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: hydra.callbacks.evil._target_=os.remove: "), result.stderr[-2000:]
    assert victim.read_text() == "precious" and not (tmp_path / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("multirun", [False, True])
def test_run_py_stops_with_one_line_and_exit_2_and_leaves_the_file_alone(victim: Path, tmp_path: Path, multirun: bool) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            *(["-m"] if multirun else []),
            "model=tiny",
            "dataset=synthetic",
            "logger=none",
            f"paths.output_root={tmp_path / 'outputs'}",
            "dataset._target_=builtins.open",
            f"+dataset.file={victim}",
            "+dataset.mode=w",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        [line for line in result.stderr.splitlines() if line.strip()]
        == [line for line in result.stderr.splitlines() if line.startswith("error: dataset._target_=builtins.open: ")]
        != []
    )
    assert victim.read_text() == "precious" and not (tmp_path / "outputs").exists()
