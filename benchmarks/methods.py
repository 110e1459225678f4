"""The methods the harness runs: one list, in display order.

Each method is a config, ``conf/method/<name>.yaml`` (its ``_target_`` the editor class, every
constructor default spelled out: ``tests/test_config.py`` checks the two agree), and one entry
here, which says what the harness cannot read from the class: the method's part in a comparison
(the reports order their rows by this list; the paper tables sweep every method that applies,
:mod:`tests.test_config` checks the experiments against it) and the speed benchmark's ``--quick``
overrides (few steps, for tests of its plumbing). What the editor itself can do it declares on
its class. Adding a method is its class, its config and its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from instdiffedit.types import Editor

CONF = Path(__file__).resolve().parents[1] / "conf"

Role = Literal["method", "ablation", "baseline", "upper bound"]

CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass(frozen=True)
class Method:
    """``name``: the config option (``method=<name>``); ``role``: InstDiffEdit itself, an ablation
    of it, a baseline, or an upper bound no method can beat (given the ground truth); ``quick``:
    Hydra overrides of the speed benchmark's ``--quick`` (not paper settings)."""

    name: str
    role: Role
    quick: tuple[str, ...] = ()


METHODS: tuple[Method, ...] = (
    Method("instdiffedit", "method", quick=("method.num_inference_steps=10", "method.inpaint_steps=4")),
    Method("no_mask", "ablation"),
    Method("diffedit", "baseline", quick=("method.num_noises=2", "method.num_inference_steps=10", "method.inpaint_steps=4")),
    Method("diffedit_ddim", "baseline", quick=("method.num_inference_steps=10", "method.num_maps_per_mask=2")),
    Method("sdedit", "baseline", quick=("method.num_inference_steps=10",)),
    Method("ledits_pp", "baseline", quick=("method.num_inversion_steps=10",)),
    Method("flowedit", "baseline", quick=("method.num_inference_steps=10", "method.n_max=7")),
    Method("oracle_inpaint", "upper bound"),
)
"""Every method, in the order reports show them: the method, its ablations, the baselines, the upper bound."""

BY_NAME: dict[str, Method] = {method.name: method for method in METHODS}


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
