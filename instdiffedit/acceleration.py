"""Model-level speed-ups that leave every result the same: the UNets' fast path (CUDA graphs,
compiled kernels: :mod:`instdiffedit.graphs`) and the ``channels_last`` memory format.

Both are choices for a model's modules, shared by every method that uses the model, so they are
applied once where the model is loaded (``benchmarks.models.load_pretrained``, config keys
``model.fast_path`` and ``model.channels_last``), never by a method.
"""

from __future__ import annotations

import torch

from instdiffedit.graphs import FastPath, set_fast_path


def accelerate(module: torch.nn.Module, *, fast_path: FastPath | None = None, channels_last: bool = False) -> torch.nn.Module:
    """Apply the speed-ups in place and return ``module``.

    ``fast_path`` (UNets only; None leaves it as it is): see :mod:`instdiffedit.graphs`.
    ``channels_last``: NHWC weights and activations for the convolutions (faster cuDNN kernels on
    tensor-core GPUs; on CPUs it mostly changes nothing). It moves the weights, which drops the
    UNet's graphs: they are captured again at the next call.
    """
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if fast_path is not None:
        set_fast_path(module, fast_path)
    return module


def reset(module: torch.nn.Module) -> torch.nn.Module:
    """Undo ``channels_last``: the contiguous memory format again (the fast path is set, not undone)."""
    return module.to(memory_format=torch.contiguous_format)
