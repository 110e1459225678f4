"""The results browser: a static site of the report that opens from the file system, no server, no network.

``python -m benchmarks.report <runs> --html <folder>`` writes ``<folder>/index.html`` (every table,
sortable, each number linked to its configuration's page; the figures) and an item browser per
split (:mod:`~benchmarks.report.site.browser`): per item its input and ground-truth mask, then per
configuration its mask, output and metrics, sortable and filterable, a bounded page at a time.
Pages are written by Python with every string from run folders escaped
(:mod:`~benchmarks.report.site.markup`); one small script (``browser.js``) sorts and filters.
"""

from benchmarks.report.site.build import write_site

__all__ = ["write_site"]
