"""python -m benchmarks.report <result folders or a multirun folder> [--out report] [--only tables|figures] [--html site] [--plugin NAME ...]"""

from __future__ import annotations

import argparse
import sys

from benchmarks.plugins import PluginError, load_plugins
from benchmarks.report.build import build_report
from benchmarks.report.load import ReportError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n")[0] + ": the paper's tables and figures.")
    parser.add_argument("paths", nargs="+", help="run folders, multirun folders or results files (searched recursively)")
    parser.add_argument("--out", default="report", help="the report folder (default: report)")
    parser.add_argument("--only", choices=("tables", "figures"), help="write only the tables or only the figures")
    parser.add_argument("--html", metavar="FOLDER", help="also write the results browser, a static site that opens from the file system, into FOLDER")
    parser.add_argument("--items", help="comma-separated item ids for the qualitative grid (default: random items)")
    parser.add_argument("--n-items", type=int, default=4, help="random items in the qualitative grid (default: 4)")
    parser.add_argument("--steps", type=int, default=5, help="steps shown in the mask evolution figure (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of the item draw (default: 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default: 0.95)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        dest="plugins",
        help="a plugin module whose metrics and splits the runs used (their labels and tables); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        load_plugins(args.plugins)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        report = build_report(
            args.paths,
            args.out,
            only=args.only,
            items=args.items.split(",") if args.items else None,
            n_items=args.n_items,
            seed=args.seed,
            steps=args.steps,
            confidence=args.confidence,
            resamples=args.resamples,
            html=args.html,
        )
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in report.files:
        print(path)
    for reason in report.skipped:
        print(f"not drawn: {reason}", file=sys.stderr)
    for failed in report.failed:
        print(f"error: {failed}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
