"""The methods, read from their declarations: each editor class registers its method(s) where it is
defined (``@register_method``, :mod:`instdiffedit.registry`), the project's and a plugin's alike.

Each method is a config, ``conf/method/<name>.yaml`` (its ``_target_`` the editor class, every
constructor default spelled out: ``tests/test_config.py`` checks the two agree), and the
declaration on its class, which says what the harness cannot read from the class's capabilities:
the method's part in a comparison (its role and rank: the reports order their rows by them, and
the paper tables sweep every method that applies, :mod:`tests.test_methods` checks the experiments
against them) and the speed benchmark's ``--quick`` overrides (few steps, for tests of its
plumbing). Adding a method is its class, with the decorator, and its config (docs/extending.md).

The speed benchmark's ``--short-warmup`` warms a method up with its ``warmup`` overrides: every
loop cut to a step or two, so that the warm-up makes every denoiser call shape of a full edit
(CUDA graph captures, kernel selection) at a fraction of its cost. A method without them warms
up with a full edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from instdiffedit.registry import METHODS as REGISTERED
from instdiffedit.registry import Method, in_report_order

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from instdiffedit.types import Editor

CONF = Path(__file__).resolve().parents[1] / "conf"


def _import_project_editors() -> None:
    """Import the project's editor classes, which registers their methods (once)."""
    import baselines  # noqa: F401
    import instdiffedit.compose  # noqa: F401


def all_methods() -> tuple[Method, ...]:
    """Every registered method, in the reports' order (:func:`instdiffedit.registry.in_report_order`):
    the project's and those of the plugins loaded so far."""
    _import_project_editors()
    return in_report_order(REGISTERED.values())


def method_declaration(name: str) -> Method:
    """The declaration of method ``name``; a KeyError names the registered ones."""
    _import_project_editors()
    return REGISTERED[name]


def method_config(name: str, overrides: tuple[str, ...] = ()) -> DictConfig:
    """The ``method`` node ``run.py method=<name> <overrides>`` composes (Hydra's ``compose``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"method={name}", *overrides]).method


def editor_class(name: str) -> type[Editor]:
    """The editor class of method ``name`` (its config's ``_target_``), whose ``capabilities`` say
    what it can do, without building it."""
    from hydra.utils import get_class

    return get_class(method_config(name)._target_)
