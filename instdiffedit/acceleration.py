"""Opt-in speed-ups of a model's modules that leave every result the same: ``torch.compile``
and the ``channels_last`` memory format.

Both are model-level choices (the modules are shared by every method that uses the model), so
they are applied once where the model is loaded (``benchmarks.models.load_pretrained``, config
keys ``model.compile`` and ``model.channels_last``), never by a method.
"""

from __future__ import annotations

from typing import Literal

import torch

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_COMPILED = "_instdiffedit_compile_mode"

# A compiled UNet is specialised per batch size and per set of attention processors (capture
# on or off); a benchmark of every method meets a dozen of them, more than dynamo's default.
RECOMPILE_LIMIT = 64


def compile_mode(module: torch.nn.Module) -> str | None:
    """The mode ``module`` was compiled with by :func:`accelerate`, or None."""
    return getattr(module, _COMPILED, None)


def accelerate(
    module: torch.nn.Module, *, compile: bool | str | None = None, channels_last: bool = False
) -> torch.nn.Module:
    """Apply the speed-ups in place and return ``module``.

    ``compile``: None/False leaves it eager; True or "default" is inductor's default mode;
    "reduce-overhead" adds CUDA graphs (each launch of the whole UNet becomes one replay: pays
    where a call is launch-bound, i.e. small batches); the max-autotune modes tune kernels
    (long warm-ups). Only ``forward`` is compiled, with static shapes: module hooks (the UNet
    evaluation counter) stay in Python and cannot force recompilations.

    ``channels_last``: NHWC weights and activations for the convolutions (faster cuDNN kernels
    on tensor-core GPUs; on CPUs it mostly changes nothing).
    """
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if compile in (None, False):
        return module
    mode = "default" if compile is True else compile
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES} (or true/false/null), got {compile!r}.")
    if compile_mode(module) is not None:
        if compile_mode(module) != mode:
            raise ValueError(f"{type(module).__name__} is already compiled with mode {compile_mode(module)!r}.")
        return module
    _raise_recompile_limit()
    # One compiled forward per mode, kept across reset(): switching modes back reuses its graphs.
    compiled = module.__dict__.setdefault("_instdiffedit_compiled_forwards", {})
    if mode not in compiled:
        compiled[mode] = torch.compile(type(module).forward.__get__(module), mode=mode, dynamic=False)
    module.forward = compiled[mode]
    setattr(module, _COMPILED, mode)
    return module


def _raise_recompile_limit() -> None:
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6; set whichever exists
        if hasattr(config, name) and getattr(config, name) < RECOMPILE_LIMIT:
            setattr(config, name, RECOMPILE_LIMIT)


def reset(module: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`accelerate`: the eager ``forward`` and the contiguous memory format again.

    The compiled forwards are kept: accelerating again with the same mode reuses their graphs.
    """
    if compile_mode(module) is not None:
        del module.forward  # the instance attribute; the class's forward shows through again
        delattr(module, _COMPILED)
    module.to(memory_format=torch.contiguous_format)
    return module
