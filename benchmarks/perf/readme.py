"""Generated sections of the README: text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

from pathlib import Path


def replace_section(readme: Path, name: str, text: str) -> None:
    """Put ``text`` between the README's ``name`` markers; an error naming the markers if it has none."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"error: {readme} has no {begin} ... {end} markers to put the {name} between.")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")
