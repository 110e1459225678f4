"""Writing the results browser: the index, an item browser per split, a page per configuration,
thumbnails, the figures, the stylesheet and the script, all in one folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.report.site.assets import Thumbnails, copy_figures, copy_static
from benchmarks.report.site.browser import item_browser
from benchmarks.report.site.config_pages import write_config_pages
from benchmarks.report.site.index import BrowserLink, index_body
from benchmarks.report.site.markup import page, unique_names
from benchmarks.report.tables import split_layout

if TYPE_CHECKING:
    from benchmarks.report.build import Report
    from benchmarks.report.tables import Reporter


def write_site(report: Report, reporter: Reporter, folder: str | Path) -> list[Path]:
    """The results browser of ``report`` (its tables and PNG figures, already built) in ``folder``:
    ``index.html``, ``items-<model>-<split>.html``, ``configs/``, ``thumbs/``, ``figures/``, ``assets/``.
    Returns the index, then every other page, asset and figure written (thumbnails aside). Files of
    an earlier site in the folder are overwritten, never removed."""
    site = Path(folder)
    site.mkdir(parents=True, exist_ok=True)
    files = copy_static(site)
    config_pages = write_config_pages(reporter.configs, site)
    files += [site / p for p in config_pages.values()]
    thumbs = Thumbnails(site)
    splits = list(reporter.configs.groupby(["model", "dataset"], sort=True))
    browsers = []
    for name, ((model, dataset), configs) in zip(unique_names(f"{m}-{d}" for (m, d), _ in splits), splits):
        title = split_layout(dataset)[0] + (f" · {model}" if model else "")
        rows = reporter.rows[(reporter.rows["model"] == model) & (reporter.rows["dataset"] == dataset)]
        body, counts = item_browser(title, rows, configs, config_pages, thumbs, name)
        path = site / f"items-{name}.html"
        path.write_text(page(title, body), encoding="utf-8")
        files.append(path)
        browsers.append(BrowserLink(title, path.name, **counts))
    figures = copy_figures([p for p in report.files if p.suffix == ".png"], site)
    files += [site / f for f in figures]
    index = site / "index.html"
    index.write_text(page("Report", index_body(report.tables, browsers, figures, report.skipped, config_pages)), encoding="utf-8")
    return [index, *files]
