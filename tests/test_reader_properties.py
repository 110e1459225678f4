"""Property tests of the split readers: any rows, ids and values a user's files can hold give a valid
split or one error naming the file and the line, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import PIL.Image
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.data.files import SplitInputError
from benchmarks.data.folder_split import COLUMNS, FolderSplit
from benchmarks.data.ids import id_problem
from benchmarks.data.splits import parse_list

# Text that breaks naive readers: separators of every format, path parts, control characters, quotes.
TRICKY = ["", " ", ".", "..", "../", "/", "\\", "\0", "\n", "\r\n", ",", '"', "<>", "{", "a.png", "mask.png", "é", "\u2028", "x" * 300]
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.lists(st.sampled_from(TRICKY), max_size=4).map("".join))
values = st.one_of(texts, st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.lists(st.integers(), max_size=2))
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
plausible = st.fixed_dictionaries(  # rows a user means: an image that exists, a target, and maybe more
    {"image": st.sampled_from(["a.png", "./a.png"]), "target": names | texts},
    optional={"id": names | texts, "mask": st.sampled_from(["mask.png", "a.png", "../mask.png", "none.png"]), "source": texts, "prompt": texts},
)
records = plausible | st.dictionaries(st.one_of(st.sampled_from(COLUMNS), texts), values, max_size=7)
list_lines = st.one_of(
    st.tuples(names, names, names, names).map(" <> ".join),  # an Imagen-style line
    st.tuples(names.map(lambda name: f"{name}.JPEG"), names, names).map(" <> ".join),  # an ImageNet-style line
    st.lists(texts, min_size=1, max_size=5).map(" <> ".join),
)
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a readable image and mask, for rows that name them."""
    root = tmp_path_factory.mktemp("manifest")
    PIL.Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "a.png")
    PIL.Image.new("L", (8, 8), 255).save(root / "mask.png")
    return root


def _valid_or_named(build, file: str) -> None:
    """``build()`` gives a split whose ids are valid and distinct, or a SplitInputError naming ``file`` and a line."""
    try:
        ids = build()
    except SplitInputError as error:
        message = str(error)
        assert file in message.splitlines()[0], message
        assert re.search(r"^  (line \d+|lines [\d, ]+|the (list|manifest)): ", message, re.MULTILINE), message
        return
    assert ids and len(set(ids)) == len(ids)
    assert all(id_problem(item_id) is None for item_id in ids)


@PROPERTY
@given(st.lists(records, min_size=0, max_size=5))
def test_any_jsonl_manifest_gives_a_split_or_errors_naming_its_lines(folder: Path, rows: list[dict]) -> None:
    manifest = folder / "items.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    _valid_or_named(lambda: FolderSplit(str(manifest)).item_ids(), str(manifest))


@PROPERTY
@given(st.lists(records, min_size=0, max_size=5))
def test_any_csv_manifest_gives_a_split_or_errors_naming_its_lines(folder: Path, rows: list[dict]) -> None:
    header = list(dict.fromkeys(key for row in rows for key in row)) or ["image"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, header, restval="")
    writer.writeheader()
    writer.writerows([{key: "" if value is None else str(value) for key, value in row.items()} for row in rows])
    manifest = folder / "items.csv"
    manifest.write_text(buffer.getvalue(), encoding="utf-8")
    _valid_or_named(lambda: FolderSplit(str(manifest)).item_ids(), str(manifest))


@PROPERTY
@given(st.lists(list_lines, max_size=6))
def test_any_authors_list_gives_entries_or_errors_naming_its_lines(lines: list[str]) -> None:
    _valid_or_named(lambda: [entry.id for entry in parse_list("\n".join(lines), "lists/any.txt")], "lists/any.txt")
