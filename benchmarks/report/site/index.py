"""The site's front page: the item browsers, every table of the report (sortable, each number
linked to its configuration's page), the figures, and what could not be drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.report.site.markup import join, tag, text
from benchmarks.report.stats import CONFIG
from benchmarks.report.tables import Table


@dataclass
class BrowserLink:
    """An item browser page, as the index lists it."""

    title: str
    href: str
    items: int
    configurations: int


def _row_keys(table: Table) -> list[tuple | None]:
    """Each display row's configuration key, where the table's numbers name one (published rows do not)."""
    numbers = table.numbers
    if not set(CONFIG) <= set(numbers.columns) or len(numbers) != len(table.display):
        return [None] * len(table.display)
    return [tuple(values) for values in numbers[CONFIG].itertuples(index=False)]


def table_html(table: Table, config_pages: Mapping[tuple, str]) -> str:
    """The table's display as a sortable HTML table, the cells of our configurations' rows linked to their pages."""
    head = join(tag("th", tag("button", text(c), type="button"), scope="col") for c in table.display.columns)
    body = []
    for key, values in zip(_row_keys(table), table.display.itertuples(index=False)):
        href = config_pages.get(key) if key is not None else None
        cells = (tag("a", text(v), href=href) if href and str(v) else text(v) for v in values)
        body.append(tag("tr", join(tag("td", c) for c in cells)))
    notes = tag("ul", join(tag("li", text(n)) for n in table.notes), class_="notes") if table.notes else ""
    return (
        tag("h3", text(table.title), id=f"table-{table.name}")
        + tag("table", tag("thead", tag("tr", head)) + tag("tbody", join(body)), class_="sortable", data_table=table.name)
        + notes
    )


def index_body(
    tables: Sequence[Table], browsers: Sequence[BrowserLink], figures: Sequence[str], skipped: Sequence[str], config_pages: Mapping[tuple, str]
) -> str:
    """The index page's content."""
    parts = [tag("h1", "Report"), tag("p", "Regenerate: " + tag("code", "python -m benchmarks.report &lt;result folders&gt; --html &lt;folder&gt;") + ".")]
    if browsers:
        links = join(tag("li", tag("a", text(b.title), href=b.href) + text(f": {b.items} items, {b.configurations} configurations")) for b in browsers)
        parts += [tag("h2", "Items"), tag("ul", links, class_="browsers")]
    if tables:
        parts += [tag("h2", "Tables"), tag("p", "Click a column's name to sort by it; a number opens its configuration.")]
        parts += [table_html(t, config_pages) for t in tables]
    if figures:
        shown = join(tag("figure", f'<img src="{text(f)}" alt="{text(f)}" loading="lazy">' + tag("figcaption", text(f))) for f in figures)
        parts += [tag("h2", "Figures"), tag("div", shown, class_="figures")]
    if skipped:
        parts += [tag("h2", "Not drawn"), tag("ul", join(tag("li", text(s)) for s in skipped))]
    return tag("main", join(parts), class_="index")
