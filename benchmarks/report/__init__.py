"""Paper-style tables and figures regenerated from run folders: ``python -m benchmarks.report <folders>``.

Reads the rows of every run folder under the given paths through the one reader
(:mod:`benchmarks.run.folder`; no W&B, no Hydra, no model: :mod:`~benchmarks.report.load`), names
and orders the configurations found (:mod:`~benchmarks.report.configs`), and writes Markdown and
LaTeX tables (means with bootstrap intervals over items, :mod:`~benchmarks.report.stats`; item,
failure and flag counts; the paper's published numbers beside ours, :mod:`~benchmarks.report.published`;
:mod:`~benchmarks.report.tables`, per edit type :mod:`~benchmarks.report.edit_types`) and
matplotlib figures (PNG and PDF, :mod:`~benchmarks.report.figures`), all of it and an index page
from :mod:`~benchmarks.report.build`.
"""

from benchmarks.report.build import Report, build_report
from benchmarks.report.load import ReportError, Results, load_results
from benchmarks.report.stats import mean_ci, summarize
from benchmarks.report.tables import Reporter, Table

__all__ = ["Report", "ReportError", "Reporter", "Results", "Table", "build_report", "load_results", "mean_ci", "summarize"]
