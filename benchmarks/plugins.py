"""Plugins: modules outside the project that add methods, backbone families, metrics and splits.

A user names them on the command line (``python run.py plugins=[my_plugin] method=my_method``); each
name is a module on the Python path or the name of an installed package's entry point in the group
``instdiffedit.plugins`` (``[project.entry-points."instdiffedit.plugins"] my_plugin = "my_package.plugin"``).
Importing a plugin registers what it defines (:mod:`instdiffedit.registry`); a module that registers
nothing is no plugin and is refused (so that naming, say, ``shutil`` never lets a config call
``shutil.rmtree``). Only modules named so become the harness's own: the run config may then build
the classes and functions they define, and nothing else outside the project (:func:`in_plugin`).
Entry points are never imported unless named.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

from instdiffedit.registry import DECLARING_MODULES

ENTRY_POINT_GROUP = "instdiffedit.plugins"

_LOADED: dict[str, ModuleType] = {}


class PluginError(ValueError):
    """A plugin that cannot be found or imported; its message names the plugin and the fix."""


def _module_name(name: str) -> str:
    """The module a plugin name stands for: an installed entry point's, else the name itself."""
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    return next(iter(found)).value.split(":")[0] if found else name


def load_plugins(names: str | Iterable[str] | None) -> list[ModuleType]:
    """Import every named plugin once (in the given order) and own its module; a PluginError names the first that fails."""
    modules = []
    for name in [names] if isinstance(names, str) else list(names or ()):
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise PluginError(
                f"plugin {name!r}: a plugin is a module's dotted name (e.g. my_package.plugin) or an entry point of the group {ENTRY_POINT_GROUP}."
            )
        module_name = _module_name(name)
        if module_name not in _LOADED:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name is None or not module_name.startswith(error.name):
                    raise
                raise PluginError(
                    f"plugin {name}: no module {module_name} on the Python path (PYTHONPATH) and no entry point "
                    f"{name} in the group {ENTRY_POINT_GROUP}; install the plugin or add its folder to PYTHONPATH."
                ) from None
            if not any(declaring == module_name or declaring.startswith(f"{module_name}.") for declaring in DECLARING_MODULES):
                raise PluginError(
                    f"plugin {name}: the module {module_name} registers no method, backbone, metric or split, so it is "
                    "no plugin (docs/extending.md: a plugin declares its components with the register_* decorators)."
                )
            _LOADED[module_name] = module
        modules.append(_LOADED[module_name])
    return modules


def in_plugin(dotted: str) -> bool:
    """Whether ``dotted`` (a module's name or an object's full path) lies in a plugin module the user named."""
    return any(dotted == module or dotted.startswith(f"{module}.") for module in _LOADED)
