"""The InstDiffEdit authors' split lists for the tests that read them: the folder ``INSTDIFFEDIT_LISTS`` names.

The three lists (``Editing-Mask_list.txt``, ``ImageNet_list.txt``, ``Imagen_list.txt``) are the
authors' files that a run downloads and verifies by sha256 (``benchmarks.data.splits.LISTS``).
The tests never download: put the three files in one folder and set ``INSTDIFFEDIT_LISTS`` to it
(``docs/testing.md`` says how to get them). Without it, the tests that need them are skipped and
say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hub_cache import LIST_FILES

FOLDER: Path | None = Path(os.environ["INSTDIFFEDIT_LISTS"]).expanduser() if os.environ.get("INSTDIFFEDIT_LISTS") else None
"""The folder holding the authors' lists, or None when ``INSTDIFFEDIT_LISTS`` is not set."""


def missing() -> str | None:
    """Why the lists cannot be read, in one sentence; None when all three are in :data:`FOLDER`."""
    if FOLDER is None:
        return f"INSTDIFFEDIT_LISTS is not set; point it at a folder holding the authors' {', '.join(LIST_FILES.values())}"
    absent = [name for name in LIST_FILES.values() if not (FOLDER / name).is_file()]
    return f"INSTDIFFEDIT_LISTS={FOLDER} has no {', '.join(absent)}" if absent else None


def path(split: str) -> Path:
    """The authors' list of ``split`` (call only where :func:`missing` is None)."""
    assert FOLDER is not None, missing()
    return FOLDER / LIST_FILES[split]


needs_lists = pytest.mark.skipif(missing() is not None, reason=missing() or "")
"""Skips a test, saying why, unless ``INSTDIFFEDIT_LISTS`` holds the three lists."""
