"""Writing into a run folder: a failed write is one sentence that names the file and the fix, and every
file is created the same way (mode ``0o666`` less the umask, as ``open`` creates them).

A write that fails (a full disk, a read-only folder) is no fault of the item being edited: it
raises :class:`RunFolderError`, which stops the run instead of failing every item that follows.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_FIXES = {
    errno.ENOSPC: "the disk is full: free some space, or set paths.output_root to a folder on another disk",
    errno.EDQUOT: "the disk quota is used up: free some space, or set paths.output_root to a folder on another disk",
    errno.EACCES: "the folder is not writable: make it writable, or set paths.output_root to a folder you can write",
    errno.EPERM: "the folder is not writable: make it writable, or set paths.output_root to a folder you can write",
    errno.EROFS: "the file system is read-only: set paths.output_root to a folder on a writable one",
}


class RunFolderError(Exception):
    """A file of the run folder could not be written; the message names it, the cause and the fix."""


def describe_write_error(path: str | os.PathLike, error: OSError) -> str:
    """One sentence: which file could not be written, why, and what to do."""
    fix = _FIXES.get(error.errno, "fix that, or set paths.output_root to another folder")
    return f"could not write {path}: {error.strerror or error} ({fix}); every row written before is kept, run the same command again to resume."


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Within the block, an ``OSError`` becomes a :class:`RunFolderError` naming ``path``."""
    try:
        yield
    except RunFolderError:
        raise
    except OSError as error:
        raise RunFolderError(describe_write_error(path, error)) from error


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Replace ``path``'s text at once (through a temporary file and a rename): concurrent writers
    never leave a torn file. The temporary file is created like any other (``open``'s mode and the
    umask), so the file keeps the permissions of its neighbours, unlike ``tempfile``'s ``0o600``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with writing(path):
        try:
            with temporary.open("x", encoding="utf-8") as f:
                f.write(text)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def unwritable(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be created (if absent) and written into, or None when it can.

    Checked before a run starts, so that it stops with one sentence instead of failing while
    Hydra creates the folder. The folder's nearest existing ancestor (or itself) must be a
    writable folder.
    """
    existing = next(path for path in (Path(folder).absolute(), *Path(folder).absolute().parents) if path.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is read-only"
    return None
