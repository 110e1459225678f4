"""HTML from Python strings: every text and attribute value escaped here, names of files made safe here.

Item ids, edit texts, errors and settings come from run folders, which anyone can write: they
are untrusted, so no string reaches a page without :func:`text` or :func:`attrs`.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def text(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is also safe inside an attribute)."""
    return html.escape(str(value), quote=True)


def attrs(values: Mapping[str, object]) -> str:
    """`` name="value"`` pairs, escaped; None and False leave the attribute out, True writes it bare."""
    parts = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{text(value)}"')
    return "".join(parts)


def tag(element: str, content: str = "", /, **values: object) -> str:
    """``<element ...>content</element>``; ``content`` is HTML already (escape texts with :func:`text`);
    a trailing underscore in a keyword is dropped (``class_``), other underscores become dashes."""
    names = {key.rstrip("_").replace("_", "-"): value for key, value in values.items()}
    return f"<{element}{attrs(names)}>{content}</{element}>"


def join(parts: Iterable[str]) -> str:
    return "".join(parts)


def _slug(value: object, limit: int) -> str:
    return _UNSAFE.sub("-", str(value).lower()).strip("-.")[:limit] or "x"


def safe_name(value: object, limit: int = 48) -> str:
    """A file name for ``value``: lowercase letters, digits, ``_.-``; values that needed changing
    (or shortening) get a hash of the original, so different values never share one."""
    original = str(value)
    name = _slug(original, limit)
    return name if name == original else f"{name}-{hashlib.sha256(original.encode()).hexdigest()[:8]}"


def unique_names(values: Iterable[object], limit: int = 48) -> list[str]:
    """A short readable name (``instdiffedit-threshold-0.1``) for each of ``values``, in order, made
    of the characters of :func:`safe_name`; a name already taken gets ``-2``, ``-3``, ..."""
    names: list[str] = []
    for value in values:
        base = name = _slug(value, limit)
        count = 1
        while name in names:
            count += 1
            name = f"{base}-{count}"
        names.append(name)
    return names


def page(title: str, body: str, root: str = "") -> str:
    """A whole page: ``root`` leads from the page's folder to the site's (``""`` or ``"../"``)."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{text(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{text(root)}assets/site.css"></head>\n'
        f"<body>\n{body}\n"
        f'<script src="{text(root)}assets/browser.js"></script>\n</body></html>\n'
    )
