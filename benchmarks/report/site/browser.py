"""One split's item browser: a row per item with its input and ground-truth mask, then per
configuration its mask, output, per-item metrics and flags (InstDiffEdit's per-step masks as a strip).

Every configuration of the split is a column, so a sweep (``-m method.threshold=0.1,0.2,0.3``)
is one browser with a column per swept value. The page holds every row; ``assets/browser.js``
sorts, filters and shows them a bounded page at a time (the hidden rows' images never load),
its state in the address's fragment (``#sort=instdiffedit:mask_iou&flag=failed``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.report.site.assets import Thumbnails
from benchmarks.report.site.markup import join, safe_name, tag, text, unique_names
from benchmarks.report.stats import CONFIG
from benchmarks.report.tables import metric_display
from benchmarks.run.item_view import IMAGE_COLUMNS, TEXT_COLUMNS, item_view

PAGE_SIZES = (10, 20, 50, 100)
"""Items per page the browser offers; the first page shows :data:`DEFAULT_PAGE_SIZE`."""
DEFAULT_PAGE_SIZE = 20
SORT_SEPARATOR = ":"  # "<configuration>:<metric>"; configuration names never hold one


@dataclass
class Column:
    """One configuration of the split: its name in the page, label, config page and item view."""

    name: str
    label: str
    config_page: str | None
    view: pd.DataFrame
    metrics: list[str]


def columns(rows: pd.DataFrame, configs: pd.DataFrame, config_pages: Mapping[tuple, str]) -> list[Column]:
    """Every configuration of ``configs`` (one split's, in display order) with its rows' item view."""
    names = unique_names(configs["label"])
    groups = dict(list(rows.groupby(CONFIG, sort=False)))
    found = []
    for name, (_, config) in zip(names, configs.iterrows()):
        key = tuple(config[c] for c in CONFIG)
        view = item_view(groups.get(key, rows.iloc[:0]), sorted(config["run_dirs"])).set_index("item_id", drop=False)
        metrics = [m for m in view.columns if m not in (*TEXT_COLUMNS, *IMAGE_COLUMNS) and view[m].notna().any()]
        found.append(Column(name, config["label"], config_pages.get(key), view, metrics))
    return found


def _header(metric: str) -> str:
    return metric_display(metric)[0]


def _number(metric: str, value: float) -> str:
    fmt = metric_display(metric)[1]
    return f"{value:{fmt}}"


def _script_number(value: float) -> str:
    """``value`` as the script's ``parseFloat`` reads it (a PSNR of an untouched background is infinite)."""
    return repr(value) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


def _thumb(path: str | None, alt: str, kind: str) -> str:
    if path is None:
        return tag("div", "n/a", class_="missing")
    return f'<img src="{text(path)}" alt="{text(alt)}" class="{text(kind)}" loading="lazy">'


def _figure(path: str | None, alt: str, kind: str, caption: str) -> str:
    return tag("figure", _thumb(path, alt, kind) + tag("figcaption", text(caption)))


def _first(views: Sequence[pd.DataFrame], item_id: str, column: str) -> object:
    """The item's ``column`` in the first view that has a value for it (inputs are the same in every run)."""
    for view in views:
        if item_id in view.index:
            value = view.at[item_id, column]
            if isinstance(value, Path) or (isinstance(value, str) and value):
                return value
    return None


def _config_cell(column: Column, item_id: str, split: str, thumbs: Thumbnails) -> str:
    if item_id not in column.view.index:
        return tag("td", tag("p", "not run", class_="status"), data_config=column.name, data_status="missing", data_flagged="0")
    row = column.view.loc[item_id]
    where = f"{split}/{column.name}/{safe_name(item_id)}"
    pictures = join(_figure(thumbs.add(row[kind], f"{where}.{kind}"), f"{column.label} {kind}", kind, kind) for kind in ("mask", "output"))
    metrics = join(
        tag("div", tag("dt", text(_header(m))) + tag("dd", text(_number(m, row[m])), data_metric=m, data_value=_script_number(float(row[m]))))
        for m in column.metrics
        if not math.isnan(row[m])
    )
    parts = [tag("div", pictures, class_="pictures"), tag("dl", metrics, class_="metrics")]
    if row["status"] != "ok":
        parts.append(tag("p", text(f"{row['status']}: {row['error']}" if row["error"] else row["status"]), class_="status failed"))
    if row["flags"]:
        parts.append(tag("p", text(f"flagged: {row['flags']}"), class_="status flagged"))
    strip = thumbs.add(row["mask_steps"], f"{where}.steps")
    if strip is not None:
        parts.append(_figure(strip, f"{column.label} per-step masks", "steps", "mask over the denoising steps (first to last)"))
    return tag("td", join(parts), data_config=column.name, data_status=row["status"] or "missing", data_flagged="1" if row["flags"] else "0")


def _item_row(item_id: str, cols: Sequence[Column], split: str, thumbs: Thumbnails) -> str:
    views = [c.view for c in cols]
    edit, edit_type = _first(views, item_id, "edit") or "", _first(views, item_id, "edit_type") or ""
    where = f"{split}/{safe_name(item_id)}"
    about = tag("code", text(item_id)) + tag("p", text(edit), class_="edit") + (tag("p", text(edit_type), class_="type") if edit_type else "")
    cells = [
        tag("th", about, scope="row", class_="item"),
        tag("td", _thumb(thumbs.add(_first(views, item_id, "input"), f"{where}.input"), f"{item_id} input", "input")),
        tag("td", _thumb(thumbs.add(_first(views, item_id, "ground_truth"), f"{where}.gt"), f"{item_id} ground truth", "mask")),
        *(_config_cell(c, item_id, split, thumbs) for c in cols),
    ]
    return tag("tr", join(cells), data_item=item_id, data_type=edit_type)


def _options(choices: Sequence[tuple[str, str]], label: str, name: str) -> str:
    options = join(tag("option", text(shown), value=value) for value, shown in choices)
    return tag("label", text(label) + tag("select", options, name=name))


def _controls(cols: Sequence[Column], edit_types: Sequence[str]) -> str:
    metrics = [(f"{c.name}{SORT_SEPARATOR}{m}", f"{c.label} · {_header(m)}") for c in cols for m in c.metrics]
    parts = [
        _options([("item", "item id"), *metrics], "sort by", "sort"),
        _options([("", "ascending"), ("1", "descending")], "order", "desc"),
        _options([("", "all items"), ("failed", "failed somewhere"), ("flagged", "flagged somewhere"), ("ok", "ok everywhere")], "status", "flag"),
    ]
    if edit_types:
        parts.append(_options([("", "all"), *((t, t) for t in edit_types)], "edit type", "type"))
    parts.append(
        tag(
            "span",
            _options([("", "no filter"), *metrics], "where", "where")
            + _options([("le", "≤"), ("ge", "≥")], "", "op")
            + tag("label", '<input name="value" type="number" step="any" aria-label="threshold">'),
            class_="where",
        )
    )
    parts.append(_options([(str(n), str(n)) for n in PAGE_SIZES], "per page", "per"))
    shown = join(tag("label", f'<input type="checkbox" name="show" value="{text(c.name)}" checked>' + text(c.label)) for c in cols)
    parts.append(tag("fieldset", tag("legend", "configurations") + shown))
    return tag("form", join(parts), class_="controls", data_default_per=DEFAULT_PAGE_SIZE)


def _column_header(column: Column) -> str:
    link = tag("a", "config", href=column.config_page) if column.config_page else ""
    buttons = join(
        tag("button", text(_header(m)), type="button", data_sort=f"{column.name}{SORT_SEPARATOR}{m}", title=f"sort by {column.label}'s {_header(m)}")
        for m in column.metrics
    )
    return tag("th", tag("span", text(column.label), class_="label") + " " + link + tag("div", buttons, class_="sorts"), scope="col", data_config=column.name)


def item_browser(
    title: str, rows: pd.DataFrame, configs: pd.DataFrame, config_pages: Mapping[tuple, str], thumbs: Thumbnails, split: str
) -> tuple[str, dict[str, int]]:
    """The browser page of one split (``rows`` and ``configs`` are the split's), and its counts
    (``items``, ``configurations``); ``split`` names its thumbnails' folder."""
    cols = columns(rows, configs, config_pages)
    item_ids = sorted({i for c in cols for i in c.view.index})
    edit_types = sorted({t for c in cols for t in c.view["edit_type"] if t})
    head = join([tag("th", "item", scope="col"), tag("th", "input", scope="col"), tag("th", "ground truth", scope="col"), *map(_column_header, cols)])
    body = join(_item_row(i, cols, split, thumbs) for i in item_ids)
    table = tag("table", tag("thead", tag("tr", head)) + tag("tbody", body), class_="items")
    nav = tag("nav", tag("a", "← report", href="index.html"))
    pager = tag(
        "div",
        '<button type="button" data-page="prev">previous</button><span class="count"></span><button type="button" data-page="next">next</button>',
        class_="pager",
    )
    intro = tag(
        "p",
        f"{len(item_ids)} items, {len(cols)} configurations. Click a metric under a configuration to sort by it "
        "(again: descending); masks are white where the method edits.",
    )
    page_body = nav + tag("h1", text(title)) + intro + _controls(cols, edit_types) + pager + table
    return tag("main", page_body, class_="browser"), {"items": len(item_ids), "configurations": len(cols)}
