"""Generated sections of a guide in docs/: text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

from pathlib import Path


def replace_section(doc: Path, name: str, text: str) -> None:
    """Put ``text`` between the document's ``name`` markers; an error naming the markers if it has none."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = doc.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"error: {doc} has no {begin} ... {end} markers to put the {name} between.")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")
