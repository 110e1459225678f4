"""Fingerprints of items: what a result row records of the item it was computed from.

A row remembers its item by a hash of everything the edit read: the bytes of the item's files
(image, mask) and its texts. A resumed run compares each done row's fingerprint with the item's
fingerprint now and redoes the items that changed (:mod:`benchmarks.run.changed`), so a run
folder never keeps a result of an image or a text that is no longer the item's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmarks.data.items import EditItem

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes, read in chunks (an image of any size costs a megabyte of memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: Iterable[Path | None], texts: Iterable[object]) -> str:
    """The fingerprint of an item read from ``files`` (None: an absent optional file, such as a mask)
    with ``texts`` (its edit texts and anything else that decides what it is, JSON-encodable)."""
    parts = [[None if path is None else file_digest(path) for path in files], list(texts)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def content_fingerprint(item: EditItem) -> str:
    """The fingerprint of an item from its decoded content: for splits that generate their items
    (no files), where the pixels are what the item is."""
    digest = hashlib.sha256()
    digest.update(f"{item.image.mode} {item.image.size}".encode())
    digest.update(item.image.tobytes())
    if item.gt_mask is not None:
        digest.update(np.ascontiguousarray(item.gt_mask.numpy()).tobytes())
    digest.update(json.dumps([item.target, item.source, item.prompt, item.gt_mask is None]).encode())
    return digest.hexdigest()[:16]
