"""Numeric settings have their range declared once, in the signature that takes them: the constructor
refuses a value outside it before it touches a model, and the config check reads the same declaration."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from instdiffedit.ranges import Count, Fraction, NonNegative, Side, Threshold, UnitInterval, checked_ranges, range_error

CONF = Path(__file__).resolve().parents[1] / "conf"
TARGETS = sorted({OmegaConf.load(p)._target_ for p in CONF.glob("*/*.yaml") if "_target_" in OmegaConf.load(p)})


@pytest.mark.parametrize(
    ("value", "hint", "sentence"),
    [
        (2, Fraction, "x must be in (0, 1], got 2."),
        (0, Fraction, "x must be in (0, 1], got 0."),
        (1.0, Threshold, "x must be in [0, 1), got 1.0."),
        (-0.5, UnitInterval, "x must be in [0, 1], got -0.5."),
        (0, Count, "x must be at least 1, got 0."),
        (-1, NonNegative, "x must be at least 0, got -1."),
        (0, Side | None, "x must be at least 1, got 0."),
    ],
)
def test_a_value_outside_its_declared_range_is_one_sentence_naming_the_range(value: float, hint: object, sentence: str) -> None:
    assert range_error("x", value, hint) == sentence


@pytest.mark.parametrize(("value", "hint"), [(1, Fraction), (0, Threshold), (1, Count), (None, Side | None), ("three", Count), (True, Count), (5, int)])
def test_a_value_inside_its_range_or_of_another_type_is_left_alone(value: object, hint: object) -> None:
    assert range_error("x", value, hint) is None


def test_a_checked_function_refuses_an_argument_outside_its_range_before_it_runs() -> None:
    calls = []

    @checked_ranges
    def edit(steps: Count = 1, *, strength: Fraction = 0.5) -> None:
        calls.append((steps, strength))

    with pytest.raises(ValueError, match=r"^strength must be in \(0, 1\], got 2\.$"):
        edit(3, strength=2)
    edit(3)
    assert calls == [(3, 0.5)]


@pytest.mark.parametrize("target", TARGETS)
def test_every_config_targets_hints_resolve_so_that_no_declared_range_is_skipped(target: str) -> None:
    factory = get_object(target)
    function = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(function, include_extras=True)
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            assert range_error(name, parameter.default, hints.get(name)) is None, f"{target}'s default {name}={parameter.default}"


@pytest.mark.parametrize(
    ("method", "setting", "value", "sentence"),
    [
        ("instdiffedit.InstDiffEdit", "strength", 2, "strength must be in (0, 1], got 2."),
        ("instdiffedit.InstDiffEdit", "num_inference_steps", 0, "num_inference_steps must be at least 1, got 0."),
        ("baselines.SDEdit", "strength", 0.0, "strength must be in (0, 1], got 0.0."),
        ("baselines.DiffEdit", "num_noises", 0, "num_noises must be at least 1, got 0."),
        ("baselines.FlowEdit", "n_avg", 0, "n_avg must be at least 1, got 0."),
        ("baselines.OracleInpaint", "inpaint_steps", 0, "inpaint_steps must be at least 1, got 0."),
    ],
)
def test_an_editor_refuses_a_setting_outside_its_range_before_it_looks_at_the_model(method: str, setting: str, value: float, sentence: str) -> None:
    with pytest.raises(ValueError) as refused:
        get_object(method)(object(), None, **{setting: value})  # a model that is not one: never looked at
    assert str(refused.value) == sentence
