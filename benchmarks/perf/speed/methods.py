"""The timed methods: parsed from ``--methods``, those that run on a family, built as a run builds them."""

from __future__ import annotations

import functools
from typing import Any

from benchmarks.methods import all_methods, editor_class, method_config, method_declaration
from benchmarks.models.loading import Pipelines
from benchmarks.perf.speed.models import CONF
from benchmarks.perf.speed.modes import parse_mode

TIMED = tuple(method.name for method in all_methods())
"""Every registered method (:mod:`benchmarks.methods`) can be timed, each as its config builds it."""


def build_editor(method: str, pipes: Pipelines, quick: bool, warmup: bool = False) -> Any:
    """The editor ``run.py method=<method>`` builds, on these pipelines; with the method's
    ``--quick`` overrides when ``quick``, and its short-warm-up ones when ``warmup``."""
    from hydra.utils import instantiate

    entry = method_declaration(method)
    overrides = (*(entry.quick if quick else ()), *(entry.warmup if warmup else ()))
    return instantiate(method_config(method, overrides))(pipes.base, pipes.inpaint)


def methods_for(family: str) -> list[str]:
    """Every registered method (in the reports' order) that has a config and whose class
    runs on ``family`` (its declared ``capabilities.families``); compositions are left out: each
    equals a method timed here, and what its parts run on depends on the parts chosen."""
    return [
        method.name
        for method in all_methods()
        if method.role != "composition" and (CONF / "method" / f"{method.name}.yaml").is_file() and family in editor_class(method.name).capabilities.families
    ]


def parse_method(spec: str) -> tuple[str, int]:
    """``instdiffedit@4`` -> ("instdiffedit", 4)."""
    name, _, batch = spec.partition("@")
    if name not in TIMED:
        raise SystemExit(f"error: unknown method {name!r}; choose from {', '.join(TIMED)} (optionally @K for K items per batch).")
    if batch and name != "instdiffedit":
        raise SystemExit(f"error: only instdiffedit has a batched (throughput) mode, got {spec!r}.")
    return name, int(batch or 1)


@functools.cache
def on_fast_paths() -> tuple[str, ...]:
    """The timed methods whose denoiser calls go through the shared diffusion steps, so through the
    fast path (``capabilities.fast_paths``); the others run inside diffusers pipelines, eager in every mode."""
    return tuple(name for name in TIMED if editor_class(name).capabilities.fast_paths)


def skip_reason(method: str, mode: str, compile_methods: set[str]) -> str | None:
    fast_path = parse_mode(mode)[0]
    if fast_path == "eager":
        return None
    if method not in on_fast_paths():
        return "runs inside a diffusers pipeline: eager in every mode"
    if fast_path == "compiled" and method not in compile_methods:
        return "not in --compile-methods"
    return None


def check_methods_run_on(family: str, methods: list[str]) -> None:
    """Refuse, before any model is built, a method that does not run on the model's family."""
    runs = set(methods_for(family))
    if refused := [m for m in dict.fromkeys(methods) if m not in runs]:
        raise SystemExit(f"error: {', '.join(refused)} do not run on the {family} family; its methods: {', '.join(sorted(runs, key=TIMED.index))}.")
