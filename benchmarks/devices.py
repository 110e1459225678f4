"""Where the harness computes, and in what precision: ``device=auto`` and ``dtype=auto`` resolved once, here."""

from __future__ import annotations

import torch

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else goes to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: str | torch.device) -> torch.dtype:
    """``"auto"`` is float16 on CUDA and float32 elsewhere (half precision is slow on CPUs)."""
    if dtype == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        allowed = ", ".join(["auto", *_DTYPES])
        raise ValueError(f"Unknown dtype {dtype!r}; expected one of: {allowed}.")
    return _DTYPES[dtype]
