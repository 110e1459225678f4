"""The imports go one way: the library never reaches the harness, and inside the harness each
subpackage imports only the jobs below its own (read statically, imports inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _modules(package: str) -> dict[str, set[str]]:
    folder = ROOT / package.replace(".", "/")
    files = [folder.with_suffix(".py")] if folder.with_suffix(".py").is_file() else sorted(folder.rglob("*.py"))
    return {str(path.relative_to(ROOT)): _imports(path) for path in files}


def _reaching(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in _modules(package).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("instdiffedit", ("benchmarks", "hydra", "wandb")),
        ("baselines", ("benchmarks", "hydra", "wandb")),
        ("benchmarks.data", ("benchmarks.metrics", "benchmarks.models", "benchmarks.run", "benchmarks.report", "benchmarks.perf", "benchmarks.toy")),
        ("benchmarks.metrics", ("benchmarks.models", "benchmarks.run", "benchmarks.report", "benchmarks.perf", "benchmarks.toy")),
        ("benchmarks.models", ("benchmarks.data", "benchmarks.metrics", "benchmarks.run", "benchmarks.report", "benchmarks.perf")),
        ("benchmarks.run", ("benchmarks.report", "benchmarks.perf")),
        ("benchmarks.devices", ("benchmarks",)),
        ("benchmarks.hub", ("benchmarks",)),
        ("benchmarks.methods", ("benchmarks",)),
    ],
)
def test_a_package_never_imports_the_layers_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    assert _reaching(package, forbidden) == []


def test_the_callbacks_hydra_starts_with_do_not_import_the_harness() -> None:
    assert "benchmarks.run.harness" not in _modules("benchmarks.run.callbacks")["benchmarks/run/callbacks.py"]


def test_the_toy_worlds_runtime_never_imports_its_training() -> None:
    """What a run imports (the toy's render, split, success metric and model among it) never reaches
    the toy models' training and cards: only they and the tests import them."""
    training = ROOT / "benchmarks" / "toy" / "training"
    harness = [ROOT / "run.py", *(path for path in (ROOT / "benchmarks").rglob("*.py") if training not in path.parents)]
    assert {"render", "captions", "split", "classifier", "model", "success"} <= {path.stem for path in harness if path.parent.name == "toy"}
    reaching = [f"{path.relative_to(ROOT)} imports {name}" for path in harness for name in sorted(_imports(path)) if name.startswith("benchmarks.toy.training")]
    assert reaching == []
