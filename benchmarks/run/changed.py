"""Rows whose item changed since they were written: set aside, so that a resumed run does the item again.

Every row records its item's fingerprint (``item_fingerprint``, see
:mod:`benchmarks.data.fingerprints`). Before a run picks the items still to do,
:func:`set_aside_changed_rows` compares the rows of its items with their fingerprints now; a row
whose fingerprint differs (its image, mask or texts were edited in place, under the same path)
is moved from its results file to ``<file>.stale`` beside it, never deleted, and the item counts
as not done. Rows written before fingerprints were recorded carry none and are kept.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.run.folder import STALE_SUFFIX, RunFolder

FINGERPRINT = "item_fingerprint"


@dataclass
class SetAside:
    """What :func:`set_aside_changed_rows` moved: the changed items, their rows and where they went."""

    items: set[str] = field(default_factory=set)
    rows: int = 0
    files: list[Path] = field(default_factory=list)  # the .stale files written
    without_fingerprint: int = 0  # rows of earlier versions: kept, their item not checked


def set_aside_changed_rows(run_dir: str | os.PathLike, method: str, config_id: str, item_ids: Iterable[str], fingerprint: Callable[[str], str]) -> SetAside:
    """Move the rows of ``item_ids`` (for ``method`` and ``config_id``) whose recorded fingerprint is
    not ``fingerprint(item_id)`` from every results file of ``run_dir`` to ``<file>.stale``.

    Every file, not only the caller's: another shard count's rows of the same item would otherwise
    still count as done. An item whose fingerprint cannot be computed now (its file went missing)
    counts as changed: its load fails again and its row says why. A torn last line is left as it is.
    """
    wanted, now, aside = set(item_ids), {}, SetAside()

    def changed(item_id: str, recorded: str) -> bool:
        if item_id not in now:
            try:
                now[item_id] = fingerprint(item_id)
            except (OSError, KeyError, ValueError):  # the item cannot be read now; redone, its load says why
                now[item_id] = None
        return now[item_id] != recorded

    for _, _, path in RunFolder(run_dir).results_files():
        data = path.read_bytes()
        whole = data.rfind(b"\n") + 1  # a torn tail stays for the file's writer to repair
        kept, moved = [], []
        for line in data[:whole].splitlines(keepends=True):
            row = _row(line)
            ours = row is not None and row.get("method") == method and row.get("config_id") == config_id
            if ours and row.get("item_id") in wanted:
                recorded = row.get(FINGERPRINT)
                if recorded is None:
                    aside.without_fingerprint += 1
                elif changed(row["item_id"], recorded):
                    moved.append(line)
                    aside.items.add(row["item_id"])
                    continue
            kept.append(line)
        if moved:
            aside.files.append(_move(path, kept, moved, data[whole:]))
            aside.rows += len(moved)
    return aside


def _row(line: bytes) -> dict | None:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def _move(path: Path, kept: list[bytes], moved: list[bytes], tail: bytes) -> Path:
    """Append ``moved`` to ``<path>.stale`` (forced to disk), then replace ``path`` by ``kept`` and ``tail``
    atomically: a crash between the two leaves a row in both files, never in neither."""
    stale = path.with_name(path.name + STALE_SUFFIX)
    with stale.open("ab") as f:
        f.write(b"".join(moved))
        f.flush()
        os.fsync(f.fileno())
    mode = stat.S_IMODE(path.stat().st_mode)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-", delete=False) as f:
        f.write(b"".join(kept) + tail)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(f.name, mode)
    os.replace(f.name, path)
    return stale
