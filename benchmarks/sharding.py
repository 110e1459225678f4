"""The layout of a sharded run folder: its name, file names per shard, and the split's item list.

Every shard of a run writes into the same folder (the folder is named by the run's settings,
and ``shard.*`` never enter the name), so each shard's files carry a tag such as
``shard-003-of-016``. The names are made here and parsed back by :mod:`benchmarks.merge`,
so the two can never drift apart. This module imports nothing heavy: ``run.py`` uses it to
name Hydra's per-job files before any model code is imported.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

ITEMS_FILE = "items.txt"
MAX_RUN_NAME_BYTES = 200  # file systems allow 255 bytes per path component
_ESCAPES = {"%": "%25", "/": "%2F", "\\": "%5C"}
RESULTS_STEM = "results"
_SHARD_FILE = re.compile(r"^results(?:\.shard-(\d{3,})-of-(\d{3,}))?\.jsonl$")


def run_folder_name(override_dirname: str) -> str:
    """The run folder's name from Hydra's ``override_dirname`` (``"default"`` for a run without overrides).

    A path in an override (``dataset.root=/data/em``) must not nest folders: ``/`` and ``\\``
    are percent-encoded, and ``%`` too, so that two different overrides never share a name
    (``dataset.root=%2Fdata%2Fem``). Names without these characters are unchanged, so the
    folders of earlier runs resume. A name over :data:`MAX_RUN_NAME_BYTES` keeps its beginning
    and ends with a hash of the whole.
    """
    if not override_dirname:
        return "default"
    name = "".join(_ESCAPES.get(character, character) for character in override_dirname)
    encoded = name.encode()
    if len(encoded) <= MAX_RUN_NAME_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    head = encoded[: MAX_RUN_NAME_BYTES - len(digest) - 1].decode(errors="ignore")
    return re.sub(r"%[0-9A-F]?$", "", head) + "-" + digest  # never half an escape


def shard_tag(index: int, count: int, prefix: str = "") -> str:
    """``""`` for an unsharded run, else ``prefix + "shard-003-of-016"``: what a shard adds to its file names."""
    return "" if int(count) == 1 else f"{prefix}shard-{int(index):03d}-of-{int(count):03d}"


def shard_file_name(stem: str, suffix: str, index: int = 0, count: int = 1) -> str:
    """``results.jsonl`` unsharded, ``results.shard-003-of-016.jsonl`` for shard 3 of 16."""
    return f"{stem}{shard_tag(index, count, '.')}.{suffix}"


def parse_results_name(name: str) -> tuple[int, int] | None:
    """``(index, count)`` of a results file name (``(0, 1)`` for ``results.jsonl``); None for other files."""
    match = _SHARD_FILE.match(name)
    if match is None:
        return None
    if match.group(1) is None:
        return 0, 1
    return int(match.group(1)), int(match.group(2))


def write_item_list(run_dir: str | os.PathLike, item_ids: Sequence[str]) -> None:
    """Record the whole split's item ids (one per line) so a merge can tell which items are missing.

    Every shard writes the same list; it goes through a temporary file and a rename, so shards
    writing at the same moment never leave a torn file.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{item_id}\n" for item_id in item_ids)
    target = run_dir / ITEMS_FILE
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=run_dir, prefix=".items-", delete=False) as f:
        f.write(text)
    os.replace(f.name, target)


def read_item_list(run_dir: str | os.PathLike) -> list[str] | None:
    """The split's item ids as recorded by :func:`write_item_list`, or None for a folder without a list."""
    path = Path(run_dir) / ITEMS_FILE
    if not path.exists():
        return None
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
