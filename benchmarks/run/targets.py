"""What a run config may build: every ``_target_`` is checked here before anything is imported or called.

Hydra calls whatever a ``_target_`` names, so a config (or one command-line override) could
otherwise open, write or remove files while it is being checked or run. A target is owned when
it is a class or function defined in this project's packages or in a plugin module the user
names (``plugins=[...]``, :mod:`benchmarks.plugins`), or one of the few external classes its
configs name (Hydra's own launcher and sweeper, the submitit launchers). :func:`owned_target`
is the one place that decides.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from hydra.utils import get_object
from omegaconf import Container, DictConfig
from omegaconf.errors import OmegaConfBaseException

from benchmarks.plugins import PluginError, in_plugin, load_plugins

OWNED_PACKAGES = ("instdiffedit", "baselines", "benchmarks")
"""The project's packages: any class or function defined in them may be a target."""

EXTERNAL_TARGETS = frozenset(
    {
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher",  # Hydra's defaults
        "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",  # hydra/launcher=local_gpus, submitit_local
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",  # hydra/launcher=slurm, submitit_slurm
    }
)
"""The classes outside the project that its configs name, by their full dotted path."""


def owned_target(path: object) -> Callable[..., Any] | None:
    """The class or function ``path`` names if the harness may build it, else None.

    Only dotted paths into the project's packages or the plugins the user named (or in
    :data:`EXTERNAL_TARGETS`) are imported at all; the object found must then be defined there too,
    so that a path through a module's imports (``benchmarks.run.harness.os.remove``) is refused.
    """
    if not isinstance(path, str) or not all(part.isidentifier() for part in path.split(".")):
        return None
    if path in EXTERNAL_TARGETS:
        return get_object(path)
    if not _owned_module(path):
        return None
    try:
        found = get_object(path)
    except ImportError:
        return None
    defined_in = getattr(found, "__module__", None) or ""
    if not (inspect.isclass(found) or inspect.isfunction(found)) or not _owned_module(defined_in):
        return None
    return found


def _owned_module(dotted: str) -> bool:
    """Whether ``dotted`` (a module or a path below one) lies in the project's packages or a named plugin."""
    return dotted.split(".")[0] in OWNED_PACKAGES or in_plugin(dotted)


def _targets(node: Container, prefix: str, seen: set[int]) -> Iterator[tuple[str, object]]:
    """``(key, _target_ value)`` of every node below ``node``, interpolations that make nodes included.

    An interpolation that cannot be resolved yet (the run's own folder, known once it starts) is
    left alone: whatever a ``${hydra:...}`` names lies in the ``hydra`` node, which is walked too.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        where = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix.removesuffix('.')}[{key}]"
        child = node._get_node(key)
        try:
            value = node[key]
        except OmegaConfBaseException:
            if key == "_target_":
                yield where, child._value()
            continue
        if key == "_target_":
            yield where, value
        elif isinstance(value, Container) and (child is value or child._is_interpolation()):
            yield from _targets(value, f"{where}.", seen)


def target_errors(cfg: DictConfig) -> list[str]:
    """One line per ``_target_`` of ``cfg`` (the ``hydra`` node included) that the harness does not own,
    once the plugins the config names are imported (or the one line of a plugin that cannot be)."""
    try:
        load_plugins(cfg.get("plugins"))
    except PluginError as error:
        return [str(error)]
    errors = {}
    for key, path in _targets(cfg, "", set()):
        if owned_target(path) is None:
            errors[key] = (
                f"{key}={path}: not a class or function of this project ({', '.join(OWNED_PACKAGES)}) nor a launcher its "
                "configs name; the harness builds nothing else (pick a config of conf/, e.g. dataset=<name>)."
            )
    return list(errors.values())


def command_line_target_errors(overrides: list[str]) -> list[str]:
    """One line per ``_target_`` typed on the command line that the harness does not own.

    Hydra builds its own callbacks (``hydra.callbacks``) before any callback runs, so a target
    given there would be called before the config check sees it; ``run.py`` checks the command
    line itself first. Overrides Hydra cannot parse are left to Hydra's own error.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return []
    try:  # the plugins the command line names: their own targets may be typed there too
        load_plugins([name for override in parsed if override.key_or_group == "plugins" for name in _names(override.value())])
    except PluginError as error:
        return [str(error)]

    def values(value: object) -> Iterator[object]:
        yield from (value.list if isinstance(value, ChoiceSweep) else [value])

    def targets(key: str, value: object) -> Iterator[tuple[str, object]]:
        if key.split(".")[-1] == "_target_":
            yield key, value
        elif isinstance(value, dict):
            for name, inner in value.items():
                yield from targets(f"{key}.{name}", inner)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                yield from targets(f"{key}[{index}]", inner)

    errors = []
    for override in parsed:
        for value in values(override.value()):
            for key, path in targets(override.key_or_group, value):
                if owned_target(path) is None:
                    errors.append(
                        f"{key}={path}: not a class or function of this project ({', '.join(OWNED_PACKAGES)}) nor a launcher "
                        "its configs name; the harness builds nothing else."
                    )
    return errors


def _names(value: object) -> list[object]:
    """The plugin names of a ``plugins=`` override's value: one name or a list of them."""
    return value if isinstance(value, list) else [value]
