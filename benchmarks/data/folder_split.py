"""Your own images as a split: a manifest (CSV or JSON Lines) of images, edit texts and optional masks.

Columns (CSV header, or JSON keys per line): ``image`` and ``target`` (required); ``source``,
``mask``, ``prompt`` and ``id`` (optional). Paths are relative to the manifest's folder (or
absolute). ``id`` defaults to the image's file name without its suffix. The whole manifest is
checked when the split is built: every missing file, unreadable image or mask, mask of another
size than its image, unknown column, missing required field and repeated id is reported, with
its line number, in one error before any model loads.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.files import (
    MissingFilesError,
    Problems,
    image_problem,
    open_mask,
    open_rgb,
)
from benchmarks.data.fingerprints import fingerprint
from benchmarks.data.ids import id_problem
from benchmarks.data.items import EditDataset, EditItem

REQUIRED = ("image", "target")
OPTIONAL = ("source", "mask", "prompt", "id")
COLUMNS = REQUIRED + OPTIONAL
SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class ManifestRow:
    id: str
    line: int
    image: Path
    target: str
    source: str | None
    prompt: str | None
    mask: Path | None


def _text_of(path: Path, problems: Problems) -> str | None:
    """The manifest's text, or None when it is not UTF-8 (the problem names the line and the byte)."""
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0  # as spreadsheets save "UTF-8"
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = bom + error.start
        line = data.count(b"\n", 0, offset) + 1
        problems.add(f"line {line}", f"not UTF-8 text (byte 0x{data[offset]:02x} at byte offset {offset} of the file): save the manifest as UTF-8")
        return None


def _csv_records(path: Path, problems: Problems) -> Iterator[tuple[int, dict[str, str]]]:
    if (text := _text_of(path, problems)) is None:
        return
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if unknown := [c for c in header if c not in COLUMNS]:
            problems.add("line 1", f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are {', '.join(COLUMNS)}")
        if absent := [c for c in REQUIRED if c not in header]:
            problems.add("line 1", f"no column(s) {', '.join(absent)} in the header; required: {', '.join(REQUIRED)}")
            return
        for record in reader:
            if None in record:  # more cells than header columns
                problems.add(f"line {reader.line_num}", f"{len(record[None])} cell(s) more than the header's columns")
                del record[None]
            yield reader.line_num, {k: v for k, v in record.items() if k in COLUMNS}


def _jsonl_records(path: Path, problems: Problems) -> Iterator[tuple[int, dict[str, str]]]:
    if (whole := _text_of(path, problems)) is None:
        return
    for number, text in enumerate(whole.splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            problems.add(f"line {number}", f"not valid JSON ({error.msg})")
            continue
        if not isinstance(record, dict):
            problems.add(f"line {number}", "not a JSON object")
            continue
        if unknown := [k for k in record if k not in COLUMNS]:
            problems.add(f"line {number}", f"unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(COLUMNS)}")
        bad = [k for k in COLUMNS if k in record and record[k] is not None and not isinstance(record[k], str)]
        if bad:
            problems.add(f"line {number}", f"{', '.join(bad)} must be text")
        yield number, {k: v for k, v in record.items() if k in COLUMNS and k not in bad}


def _text(record: dict[str, str], key: str) -> str | None:
    value = record.get(key)
    return (value.strip() or None) if isinstance(value, str) else None


def read_manifest(path: Path) -> list[ManifestRow]:
    """Every row of the manifest, checked; raises one error listing every problem with its line."""
    problems = Problems()
    records = _csv_records(path, problems) if path.suffix.lower() == ".csv" else _jsonl_records(path, problems)
    rows: list[ManifestRow] = []
    lines_of: dict[str, list[int]] = {}
    for line, record in records:
        where = f"line {line}"
        fields = {key: _text(record, key) for key in COLUMNS}
        if missing := [key for key in REQUIRED if fields[key] is None]:
            problems.add(where, f"missing required field(s) {', '.join(missing)}")
        if fields["image"] is None:
            continue
        image = path.parent / fields["image"]
        size, problem = image_problem(image)
        if problem:
            problems.add(where, problem)
        mask = None if fields["mask"] is None else path.parent / fields["mask"]
        if mask is not None:
            mask_size, problem = image_problem(mask)
            if problem:
                problems.add(where, f"mask: {problem}")
            elif size is not None and mask_size != size:
                problems.add(where, f"mask {mask} is {mask_size[0]}x{mask_size[1]}, its image {size[0]}x{size[1]}")
        item_id = fields["id"] or Path(fields["image"]).stem
        if problem := id_problem(item_id):
            problems.add(where, f"{problem}: give another id (results are saved in images/<id>/)")
            continue
        lines_of.setdefault(item_id, []).append(line)
        if fields["target"] is not None:
            rows.append(ManifestRow(item_id, line, image, fields["target"], fields["source"], fields["prompt"], mask))
    for item_id, lines in lines_of.items():
        if len(lines) > 1:
            problems.add(
                f"lines {', '.join(map(str, lines))}",
                f"repeat the id {item_id!r} (ids default to the image's file name without its suffix: add an id column to tell them apart)",
            )
    if not rows and not problems.items:
        problems.add("the manifest", "holds no items")
    problems.raise_if_any(f"the manifest {path}", "Fix these lines (README, 'Your own images') and run again.")
    return rows


class FolderSplit(EditDataset):
    """Your images from a manifest (see the module docstring); ``name`` labels the split in results and reports.

    ``has_masks`` is true when every row has a mask (methods that need one, like oracle
    inpainting, refuse otherwise); mask-based metrics are undefined (nan) on rows without.
    """

    has_masks: bool

    def __init__(self, manifest: str | None = None, name: str = "folder") -> None:
        if manifest is None:
            raise MissingFilesError(
                "dataset=folder needs a manifest of your images: set dataset.manifest=/path/to/items.csv (or .jsonl) with "
                f"the columns {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)} (README, 'Your own images')."
            )
        path = Path(manifest).expanduser()
        if path.is_dir():
            raise MissingFilesError(f"The manifest {path} given by dataset.manifest is a directory: give the .csv or .jsonl file in it.")
        if path.suffix.lower() not in SUFFIXES:
            raise MissingFilesError(f"The manifest {path} (dataset.manifest) must be a .csv or .jsonl file.")
        if not path.is_file():
            raise MissingFilesError(f"The manifest {path} given by dataset.manifest does not exist.")
        self.name = name
        self.rows = {row.id: row for row in read_manifest(path)}
        self.has_masks = all(row.mask is not None for row in self.rows.values())

    def item_ids(self) -> list[str]:
        return list(self.rows)

    def fingerprint(self, item_id: str) -> str:
        row = self.rows[item_id]
        return fingerprint([row.image, row.mask], [row.target, row.source, row.prompt])

    def load(self, item_id: str) -> EditItem:
        row = self.rows[item_id]
        image = open_rgb(row.image)
        mask, flags = (None, []) if row.mask is None else open_mask(row.mask, image.size)
        return EditItem(item_id, image, row.target, row.source, row.prompt, mask, {"manifest_line": str(row.line)}, tuple(flags))
