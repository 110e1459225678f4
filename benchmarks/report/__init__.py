"""Paper-style tables and figures regenerated from result files: ``python -m benchmarks.report <folders>``.

Reads every results file under the given folders with pandas (no W&B, no Hydra, no model), and
writes Markdown and LaTeX tables (means with bootstrap intervals over items, item, failure and
flag counts, the paper's published numbers beside ours) and matplotlib figures (PNG and PDF).
"""

from benchmarks.report.build import Report, build_report
from benchmarks.report.load import ReportError, Results, load_results
from benchmarks.report.stats import mean_ci, summarize
from benchmarks.report.tables import Reporter, Table

__all__ = ["Report", "ReportError", "Reporter", "Results", "Table", "build_report", "load_results", "mean_ci", "summarize"]
