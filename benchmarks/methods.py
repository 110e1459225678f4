"""The project's methods: one list, in display order (a plugin's add themselves: :func:`all_methods`).

Each method is a config, ``conf/method/<name>.yaml`` (its ``_target_`` the editor class, every
constructor default spelled out: ``tests/test_config.py`` checks the two agree), and one entry
here, which says what the harness cannot read from the class: the method's part in a comparison
(the reports order their rows by this list; the paper tables sweep every method that applies,
:mod:`tests.test_config` checks the experiments against it) and the speed benchmark's ``--quick``
overrides (few steps, for tests of its plumbing). What the editor itself can do it declares on
its class. Adding a method to the project is its class, its config and its entry here; a plugin's
method declares its entry on its class instead (``@register_method``, docs/extending.md).

The speed benchmark's ``--short-warmup`` warms a method up with its ``warmup`` overrides: every
loop cut to a step or two, so that the warm-up makes every denoiser call shape of a full edit
(CUDA graph captures, kernel selection) at a fraction of its cost. A method without them warms
up with a full edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from instdiffedit.registry import METHODS as REGISTERED
from instdiffedit.registry import ROLES, Method

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from instdiffedit.types import Editor

CONF = Path(__file__).resolve().parents[1] / "conf"

_TWO_STEPS = ("method.num_inference_steps=4",)  # strength 0.5: two steps
_TWO_INPAINT_STEPS = ("method.inpaint_steps=2",)

METHODS: tuple[Method, ...] = (
    Method("instdiffedit", "method", quick=("method.num_inference_steps=10", "method.inpaint_steps=4"), warmup=_TWO_STEPS + _TWO_INPAINT_STEPS),
    Method("no_mask", "ablation", quick=("method.num_inference_steps=10",), warmup=_TWO_STEPS),
    Method(
        "diffedit",
        "baseline",
        quick=("method.num_noises=2", "method.num_inference_steps=10", "method.inpaint_steps=4"),
        warmup=_TWO_STEPS + _TWO_INPAINT_STEPS,
    ),
    Method("diffedit_ddim", "baseline", quick=("method.num_inference_steps=10", "method.num_maps_per_mask=2")),
    Method("sdedit", "baseline", quick=("method.num_inference_steps=10",), warmup=_TWO_STEPS),
    Method("ledits_pp", "baseline", quick=("method.num_inversion_steps=10",)),
    Method(
        "flowedit",
        "baseline",
        quick=("method.num_inference_steps=10", "method.n_max=7"),
        warmup=("method.num_inference_steps=4", "method.n_max=2"),
    ),
    Method("kontext", "baseline", quick=("method.num_inference_steps=4",)),
    Method("qwen_image_edit", "baseline", quick=("method.num_inference_steps=4",)),
    Method("oracle_inpaint", "upper bound", quick=("method.inpaint_steps=4",), warmup=_TWO_INPAINT_STEPS),
    Method("compose", "composition"),
)
"""Every method, in the order reports show them: the method, its ablations, the baselines, the upper bound."""

BY_NAME: dict[str, Method] = {method.name: method for method in METHODS}


def all_methods() -> tuple[Method, ...]:
    """The project's methods and those registered by plugins (:func:`instdiffedit.registry.register_method`),
    in the reports' order: by role, the project's first within each role."""
    added = [method for method in REGISTERED.values() if method.name not in BY_NAME]
    return tuple(sorted((*METHODS, *added), key=lambda method: ROLES.index(method.role)))


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
