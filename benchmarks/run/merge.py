"""Merge a run's shard files into one table, and say what is missing, failed or overlapping.

A run split over N shards (``shard.count=N``) leaves N files in one folder,
``results.shard-000-of-N.jsonl`` ... (plus ``results.jsonl`` if it also ran unsharded), and
the split's item list ``items.txt``. Merging reads them all and keeps one row per
(item, method, config) by the rule every reader follows (:func:`~benchmarks.run.results.one_row_per_key`:
an ``ok`` row wins over a failure, and among equals the last one read; shards re-run after a
preemption append, they never rewrite). It then checks the set against the item list, shard by shard.

    python -m benchmarks.run.merge outputs/sd14/imagenet/diffedit/default
    python -m benchmarks.run.merge outputs            # every run folder below, e.g. a whole sweep

Reports and other readers take the same rows through :func:`benchmarks.run.folder.read_results`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.run.folder import (
    ITEMS_FILE,
    MERGED_NAME,
    RESULTS_STEM,
    RunFolder,
    find_run_dirs,
    shard_file_name,
)
from benchmarks.run.results import KEY, ResultsFileError, ResultsTable, one_row_per_key
from benchmarks.run.writes import RunFolderError, write_text_atomically

log = logging.getLogger(__name__)

#: Columns that differ between two runs computing the same thing: wall-clock time, where it ran,
#: and how many items shared its UNet calls (a shard's last batch is smaller than a whole run's).
WALL_CLOCK_PREFIXES = ("seconds",)
WALL_CLOCK_COLUMNS = frozenset({"finished_at", "device", "hostname", "batch_size"})


@dataclass
class ShardReport:
    """What one shard (one results file, or one expected but absent) contributed."""

    index: int
    count: int
    file: str | None  # None: the file does not exist
    rows: int = 0  # rows read, duplicates included
    ok: int = 0
    failed: list[str] = field(default_factory=list)  # items whose merged row failed
    missing: list[str] = field(default_factory=list)  # items of this shard's slice without any row
    foreign: list[str] = field(default_factory=list)  # items in this file that belong to no slice of it

    @property
    def name(self) -> str:
        return f"shard {self.index}/{self.count}" if self.count > 1 else "unsharded"


@dataclass
class MergeResult:
    """The merged rows of one run folder and the report on how complete they are."""

    run_dir: Path
    records: list[dict]  # the kept rows as read, in the order their items first appeared
    shards: list[ShardReport]
    duplicates: int  # rows dropped because their (item, method, config) came again
    problems: list[str]  # sentences: overlapping shardings, absent shard files, rows outside their slice
    items: list[str] | None  # the split, when the run recorded it

    @property
    def rows(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)

    @property
    def missing(self) -> list[str]:
        return sorted({i for s in self.shards for i in s.missing})

    @property
    def failed(self) -> list[str]:
        return sorted({i for s in self.shards for i in s.failed})

    @property
    def complete(self) -> bool:
        """Every item of the split has an ``ok`` row, and no row comes from outside its shard's slice."""
        foreign = any(s.foreign for s in self.shards)
        return self.items is not None and not (self.missing or self.failed or foreign)


def merge_run(run_dir: str | os.PathLike) -> MergeResult:
    """Read every results file of one run folder; one row per key; report per shard."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    files = folder.results_files()
    if not files:
        raise FileNotFoundError(f"{run_dir} holds no results file ({shard_file_name(RESULTS_STEM, 'jsonl')} or {RESULTS_STEM}.shard-*-of-*.jsonl).")
    items = folder.item_ids()
    read: list[dict] = []
    per_file: dict[Path, list[dict]] = {}
    for _, _, path in files:
        per_file[path] = ResultsTable(path).rows()
        read += per_file[path]
    records = one_row_per_key(read)
    problems: list[str] = []
    if items is None:
        problems.append(f"No {ITEMS_FILE} here: missing items cannot be listed (runs write it when they start; re-run any shard to record it).")
    counts = sorted({count for _, count, _ in files})
    if len(counts) > 1:
        problems.append(
            "Results of different shardings (shard.count = " + ", ".join(map(str, counts)) + ") share this folder: "
            "their slices overlap; one row per item was kept."
        )
    done = _items_by_status(records)
    finest = max(counts)  # with several shardings, a missing item is listed once, under the finest
    shards = []
    for count in counts:
        present = {index: path for index, c, path in files if c == count}
        for index in range(count):
            shard = ShardReport(index, count, present[index].name if index in present else None)
            slice_ids = items[index::count] if items is not None else []
            if count == finest:
                shard.missing = [i for i in slice_ids if i not in done["any"]]
            if index in present:
                mine = {r.get("item_id") for r in per_file[present[index]]}
                shard.rows = len(per_file[present[index]])
                shard.ok = len(mine & done["ok"])
                shard.failed = sorted(mine & done["failed"])
                if items is not None:
                    shard.foreign = sorted(mine - set(slice_ids))
                    if shard.foreign:
                        problems.append(
                            f"{shard.file} holds {len(shard.foreign)} item(s) outside its slice of the split "
                            f"(e.g. {shard.foreign[0]}): the split changed since it ran."
                        )
            elif items is None or shard.missing:
                expected = shard_file_name(RESULTS_STEM, "jsonl", index, count)
                problems.append(f"{expected} does not exist: shard.index={index} of shard.count={count} never wrote a row.")
            shards.append(shard)
    return MergeResult(run_dir, records, shards, len(read) - len(records), problems, items)


def _items_by_status(records: list[dict]) -> dict[str, set[str]]:
    """Items with a row ("any") and with an ``ok`` row, in every (method, config) of the folder; the rest failed."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["method"], record["config_id"]), []).append(record)
    every = [{r["item_id"] for r in rows} for rows in groups.values()]
    ok = [{r["item_id"] for r in rows if r.get("status") == "ok"} for rows in groups.values()]
    done_ok = set.intersection(*ok) if ok else set()
    return {"any": set.intersection(*every) if every else set(), "ok": done_ok, "failed": set().union(*every) - done_ok}


def comparable(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows without wall-clock and device columns, sorted by key: equal iff two runs computed the same."""
    volatile = [c for c in rows if c in WALL_CLOCK_COLUMNS or c.startswith(WALL_CLOCK_PREFIXES)]
    kept = rows.drop(columns=volatile)
    return kept[sorted(kept.columns)].sort_values(list(KEY)).reset_index(drop=True)


def write_rows(records: Iterable[dict], path: str | os.PathLike) -> None:
    """Write merged rows as JSON Lines, exactly as the shard files hold them (all at once: never a torn file)."""
    write_text_atomically(path, "".join(json.dumps(row, allow_nan=True, default=str) + "\n" for row in records))


def format_report(result: MergeResult, *, max_ids: int = 10) -> str:
    """A few lines per run folder: totals, then one line per shard that is not complete."""
    total = len(result.items) if result.items is not None else "?"
    status = "complete" if result.complete else "INCOMPLETE"
    lines = [
        f"{result.run_dir}: {status}: {sum(r.get('status') == 'ok' for r in result.records)} "
        f"of {total} items ok, {len(result.failed)} failed, {len(result.missing)} missing; "
        f"{len(result.shards)} shard(s), {result.duplicates} duplicate row(s) dropped."
    ]
    for shard in result.shards:
        if shard.file is not None and not (shard.failed or shard.missing or shard.foreign):
            continue
        where = shard.file or "no results file"
        parts = [f"{shard.ok} ok"]
        if shard.failed:
            parts.append(f"{len(shard.failed)} failed: {_ids(shard.failed, max_ids)}")
        if shard.missing:
            parts.append(f"{len(shard.missing)} missing: {_ids(shard.missing, max_ids)}")
        lines.append(f"  {shard.name} ({where}): " + "; ".join(parts))
    lines += [f"  ! {problem}" for problem in result.problems]
    if result.missing or result.failed:
        lines.append(
            "  To complete the set, run the same command again for the shards listed (the same shard.index and "
            "shard.count): each resumes, retrying failed items and skipping those done."
        )
    return "\n".join(lines)


def _ids(ids: Sequence[str], limit: int) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run folders, or folders above them (a sweep's output root)")
    parser.add_argument("--no-write", action="store_true", help=f"only report; do not write {MERGED_NAME} per run folder")
    args = parser.parse_args(argv)
    try:
        run_dirs = find_run_dirs(args.paths)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not run_dirs:
        print(f"error: no results files below {', '.join(args.paths)}.", file=sys.stderr)
        return 2
    complete = True
    for run_dir in run_dirs:
        try:
            result = merge_run(run_dir)
            if not args.no_write:
                write_rows(result.records, RunFolder(run_dir).merged_file)
        except (ResultsFileError, RunFolderError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        complete &= result.complete
        print(format_report(result))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
