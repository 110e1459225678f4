"""The ranges of numeric settings, declared once: in the annotation of the parameter that takes them.

``strength: Fraction = 0.5`` says that a strength lies in (0, 1]. The ranges are
``annotated_types`` metadata (which pydantic reads too); :func:`range_error` tells whether a value
lies outside its parameter's range. :func:`checked_ranges` makes a function check its arguments
so, and a harness can check a whole config against the same signatures before any model loads.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, GroupedMetadata, Gt, Interval, Le, Lt

Steps = Annotated[int, Ge(1)]
"""A number of denoising (or inversion) steps."""
Count = Annotated[int, Ge(1)]
"""A number of things: noises, items, maps."""
Side = Annotated[int, Ge(1)]
"""A size in pixels or grid cells, a kernel's side."""
NonNegative = Annotated[int, Ge(0)]
"""A number of passes or steps that may be none."""
Fraction = Annotated[float, Interval(gt=0, le=1)]
"""A share of a schedule that runs at least something: a strength."""
UnitInterval = Annotated[float, Interval(ge=0, le=1)]
"""A bound or a quantile of values in [0, 1]."""
Threshold = Annotated[float, Interval(ge=0, lt=1)]
"""A binarisation threshold of a map in [0, 1] (at 1 nothing would pass), or a share of a schedule skipped."""

F = TypeVar("F", bound=Callable[..., Any])


def _bounds(hint: Any) -> dict[str, float]:
    """The bounds (``gt``, ``ge``, ``lt``, ``le``) that ``hint``, or the Annotated arm of an Optional, declares."""
    if typing.get_origin(hint) is Annotated:
        bounds = {}
        for item in hint.__metadata__:
            for bound in item if isinstance(item, GroupedMetadata) else [item]:
                if isinstance(bound, (Gt, Ge, Lt, Le)):
                    name = type(bound).__name__.lower()
                    bounds[name] = getattr(bound, name)
        return bounds
    return next((b for arm in typing.get_args(hint) if (b := _bounds(arm))), {})


def describe(bounds: dict[str, float]) -> str:
    """``{"ge": 1}`` as "at least 1", ``{"gt": 0, "le": 1}`` as "in (0, 1]"."""
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"greater than {low[1]}" if low[0] == "(" else f"at least {low[1]}"
    return f"less than {high[1]}" if high[0] == ")" else f"at most {high[1]}"


def range_error(name: str, value: object, hint: Any) -> str | None:
    """The sentence saying that ``value`` of setting ``name`` lies outside the range ``hint`` declares, else None.

    Only numbers are compared; a value of another type is left to the type check.
    """
    bounds = _bounds(hint)
    if not bounds or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    inside = (
        ("gt" not in bounds or value > bounds["gt"])
        and ("ge" not in bounds or value >= bounds["ge"])
        and ("lt" not in bounds or value < bounds["lt"])
        and ("le" not in bounds or value <= bounds["le"])
    )
    return None if inside else f"{name} must be {describe(bounds)}, got {value}."


def checked_ranges(function: F) -> F:
    """``function``, raising a ValueError (:func:`range_error`'s sentence) for an argument outside its declared range."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        hints = typing.get_type_hints(function, include_extras=True)
        for name, value in signature.bind(*args, **kwargs).arguments.items():
            if (error := range_error(name, value, hints.get(name))) is not None:
                raise ValueError(error)
        return function(*args, **kwargs)

    return typing.cast(F, checked)
