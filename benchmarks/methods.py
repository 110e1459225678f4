"""The methods the harness runs: one list, in display order.

Each method is a config, ``conf/method/<name>.yaml`` (its ``_target_`` the editor class, every
constructor default spelled out: ``tests/test_config.py`` checks the two agree), and one entry
here, which says what the harness cannot read from the class: the method's part in a comparison
(the reports order their rows by this list; the paper tables sweep every method that applies,
:mod:`tests.test_config` checks the experiments against it) and the speed benchmark's ``--quick``
overrides (few steps, for tests of its plumbing). What the editor itself can do it declares on
its class. Adding a method is its class, its config and its entry here.

The speed benchmark's ``--short-warmup`` warms a method up with its ``warmup`` overrides: every
loop cut to a step or two, so that the warm-up makes every denoiser call shape of a full edit
(CUDA graph captures, kernel selection) at a fraction of its cost. A method without them warms
up with a full edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["method", "ablation", "baseline", "upper bound"]


@dataclass(frozen=True)
class Method:
    """``name``: the config option (``method=<name>``); ``role``: InstDiffEdit itself, an ablation
    of it, a baseline, or an upper bound no method can beat (given the ground truth); ``quick``:
    Hydra overrides of the speed benchmark's ``--quick`` (not paper settings); ``warmup``: Hydra
    overrides that keep the shape of every denoiser call and run few steps (``--short-warmup``)."""

    name: str
    role: Role
    quick: tuple[str, ...] = ()
    warmup: tuple[str, ...] = ()


_TWO_STEPS = ("method.num_inference_steps=4",)  # strength 0.5: two steps
_TWO_INPAINT_STEPS = ("method.inpaint_steps=2",)

METHODS: tuple[Method, ...] = (
    Method("instdiffedit", "method", quick=("method.num_inference_steps=10", "method.inpaint_steps=4"), warmup=_TWO_STEPS + _TWO_INPAINT_STEPS),
    Method("no_mask", "ablation", quick=("method.num_inference_steps=10",), warmup=_TWO_STEPS),
    Method(
        "diffedit", "baseline", quick=("method.num_noises=2", "method.num_inference_steps=10", "method.inpaint_steps=4"),
        warmup=_TWO_STEPS + _TWO_INPAINT_STEPS,
    ),
    Method("diffedit_ddim", "baseline", quick=("method.num_inference_steps=10", "method.num_maps_per_mask=2")),
    Method("sdedit", "baseline", quick=("method.num_inference_steps=10",), warmup=_TWO_STEPS),
    Method("ledits_pp", "baseline", quick=("method.num_inversion_steps=10",)),
    Method("oracle_inpaint", "upper bound", quick=("method.inpaint_steps=4",), warmup=_TWO_INPAINT_STEPS),
)
"""Every method, in the order reports show them: the method, its ablations, the baselines, the upper bound."""

BY_NAME: dict[str, Method] = {method.name: method for method in METHODS}
