"""A module outside the project adds a method, a backbone family, a metric and a split: named on the
command line, it registers them on import, its configs come through Hydra's search path, and no
project file changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from benchmarks import methods, plugins
from benchmarks.plugins import PluginError, in_plugin, load_plugins
from instdiffedit import registry
from instdiffedit.registry import Registry, in_report_order, register_method

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "tests" / "plugins"
WITH_PLUGIN = ("plugins=[example_plugin]", f"hydra.searchpath=[file://{PLUGIN_DIR / 'conf'}]")


def _python(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_a_plugin_runs_its_method_on_its_backbone_family_with_its_metric_and_split_and_reports_them(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    run = _python(
        "run.py",
        *WITH_PLUGIN,
        "model=example_tiny",
        "method=example_sdedit",
        "dataset=example_squares",
        "metrics=example",
        "logger=none",
        "method.num_inference_steps=4",
        f"paths.output_root={out}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "changed_share: share of pixels whose colour moved" in run.stdout, "the metric's declared note is printed under the summary"
    summary = next(line.split() for line in run.stdout.splitlines() if line.startswith("example_sdedit"))
    assert summary[2:4] == ["2", "0"], "both items of the plugin's split edited, none failed"

    report = _python("-m", "benchmarks.report", str(out), "--out", str(tmp_path / "report"), "--only", "tables", "--plugin", "example_plugin")
    assert report.returncode == 0, report.stderr[-3000:]
    table = (tmp_path / "report" / "tables" / "example_squares.md").read_text()
    assert table.startswith("### Example squares"), "the split's declared title"
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert header.index("changed pixels (%)") < header.index("mask IoU (%)") < header.index("s / image"), "the split's declared columns, in order"
    assert "| example_sdedit" in table


def test_a_plugin_the_run_cannot_import_is_one_error_line_before_anything_runs(tmp_path: Path) -> None:
    run = _python("run.py", "plugins=[no_such_plugin]", "model=tiny", "dataset=synthetic", "logger=none", f"paths.output_root={tmp_path}")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: plugin no_such_plugin: no module no_such_plugin on the Python path")
    assert not any(tmp_path.iterdir()), "no run folder"


@pytest.mark.parametrize("split", ["dataset=not_owned", "dataset._target_=not_a_plugin.Split"])
def test_a_target_of_a_module_not_named_as_a_plugin_is_refused_and_never_imported(tmp_path: Path, split: str) -> None:
    """From a plugin's conf folder or typed on the command line, beside a named plugin, on the Python path."""
    mark = tmp_path / "imported"
    run = _python(
        "run.py",
        *WITH_PLUGIN,
        "model=example_tiny",
        "method=example_sdedit",
        split,
        "logger=none",
        f"paths.output_root={tmp_path / 'outputs'}",
        env={"NOT_A_PLUGIN_MARK": str(mark)},
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: dataset._target_=not_a_plugin.Split: not a class or function of this project")
    assert not mark.exists(), "the module was imported"
    assert not (tmp_path / "outputs").exists()


def test_only_the_modules_named_as_plugins_are_owned(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PluginError, match="a plugin is a module's dotted name"):
        load_plugins(["os; rm"])
    with pytest.raises(PluginError, match="the module shutil registers no method, backbone, metric or split, so it is no plugin"):
        load_plugins(["shutil"])  # else a config could name shutil.rmtree
    assert not in_plugin("shutil.rmtree")
    monkeypatch.setattr(plugins, "_LOADED", {"example_plugin": ModuleType("example_plugin")})  # as if loaded, without registering
    assert in_plugin("example_plugin.ExampleSDEdit") and in_plugin("example_plugin")
    assert not in_plugin("example_plugin_other.X") and not in_plugin("baselines.SDEdit") and not in_plugin("os.remove")


def test_a_registered_method_follows_the_projects_methods_of_its_role_in_the_reports_order(monkeypatch: pytest.MonkeyPatch) -> None:
    project = methods.all_methods()
    registered = Registry("method")
    for method in project:
        registered.add(method.name, method)
    monkeypatch.setattr(registry, "METHODS", registered)  # a copy: nothing registered here leaks into other tests
    monkeypatch.setattr(methods, "REGISTERED", registered)
    register_method("my_baseline", role="baseline")(type("MyBaseline", (), {}))
    names = [method.name for method in methods.all_methods()]
    last_baseline = max(i for i, method in enumerate(project) if method.role == "baseline")
    assert names == [*(m.name for m in project[: last_baseline + 1]), "my_baseline", *(m.name for m in project[last_baseline + 1 :])]


def test_the_projects_methods_are_ranked_so_their_order_never_hangs_on_the_order_of_imports() -> None:
    project = methods.all_methods()
    assert all(method.rank is not None for method in project)
    assert in_report_order(reversed(project)) == project
