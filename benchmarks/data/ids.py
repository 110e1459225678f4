"""Item ids are names, never paths: the one rule every split's ids obey.

An id names the item's folder in a run (``images/<id>/``) and the files cached for it (the
Imagen split's generated inputs, ``<id>.png``), so it must be one file-name component that
stays where it is put: not empty, not ``.`` or ``..``, no ``/`` or ``\\``, no NUL or other
control character (a newline would also split the run's ``items.txt``), at most
:data:`MAX_ID_BYTES` bytes. Every split's reader checks its ids with :func:`id_problem` where
it reads them and names the file and line of a bad one; whatever writes a file named by an
id goes through :func:`checked_id`, which refuses a bad one again, so no path outside the
folder is ever formed.
"""

from __future__ import annotations

MAX_ID_BYTES = 200
"""File systems allow 255 bytes per name; the rest is left for what is added to an id (``.png``, a temporary suffix)."""


def id_problem(item_id: object) -> str | None:
    """Why ``item_id`` cannot be an item id (a sentence), or None when it can."""
    if not isinstance(item_id, str):
        return f"the id {item_id!r} is not text"
    if not item_id:
        return "the id is empty"
    if item_id in (".", ".."):
        return f"the id {item_id!r} names a folder, not an item"
    if "/" in item_id or "\\" in item_id:
        return f"the id {item_id!r} holds a path separator ('/' or '\\'); ids are names, never paths"
    if not item_id.isprintable():
        return f"the id {item_id!r} holds a control character (NUL, a newline, a tab, ...)"
    if len(item_id.encode("utf-8", errors="replace")) > MAX_ID_BYTES:
        return f"the id {item_id[:40]!r}... is longer than {MAX_ID_BYTES} bytes"
    return None


def checked_id(item_id: str) -> str:
    """``item_id`` itself when it is a valid id; else ``ValueError`` (a split let a bad id through)."""
    if problem := id_problem(item_id):
        raise ValueError(f"{problem}: refused before it could name a file.")
    return item_id
