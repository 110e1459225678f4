"""dataset=folder: your own images from a CSV or JSON Lines manifest, every bad line reported up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from benchmarks.data.files import MissingFilesError, SplitInputError
from benchmarks.data.folder_split import FolderSplit
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[1]


def _image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path.name


def _mask(path: Path, size: tuple[int, int] = (48, 40)) -> np.ndarray:
    truth = np.zeros((size[1], size[0]), dtype=bool)
    truth[10:30, 5:25] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(truth.astype(np.uint8) * 255).save(path)
    return truth


def _good_folder(folder: Path) -> np.ndarray:
    _image(folder / "photos" / "cat.png", seed=1)
    _image(folder / "photos" / "dog.jpg", seed=2)
    return _mask(folder / "masks" / "cat.png")


def test_a_csv_manifest_gives_items_with_paths_relative_to_its_folder(tmp_path: Path) -> None:
    truth = _good_folder(tmp_path)
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "image,target,source,mask,prompt,id\n"
        "photos/cat.png,a raccoon,a cat,masks/cat.png,a photo of a cat on grass,\n"
        'photos/dog.jpg,"a wolf, howling",,,,my-dog\n'
    )
    split = FolderSplit(str(manifest))
    assert split.item_ids() == ["cat", "my-dog"] and split.name == "folder" and not split.has_masks
    cat = split.load("cat")
    assert (cat.target, cat.source, cat.prompt) == ("a raccoon", "a cat", "a photo of a cat on grass")
    assert cat.image.size == (48, 40) and torch.equal(cat.gt_mask.bool(), torch.from_numpy(truth))
    dog = split.load("my-dog")
    assert (dog.target, dog.source, dog.prompt, dog.gt_mask) == ("a wolf, howling", None, None, None)
    assert dog.meta == {"manifest_line": "3"}


def test_a_jsonl_manifest_reads_the_same_and_names_the_split(tmp_path: Path) -> None:
    _good_folder(tmp_path)
    manifest = tmp_path / "items.jsonl"
    lines = [
        {"image": "photos/cat.png", "target": "a raccoon", "mask": "masks/cat.png"},
        {"image": str(tmp_path / "photos" / "dog.jpg"), "target": "a wolf", "mask": "masks/cat.png", "id": "d"},
    ]
    manifest.write_text("\n".join(map(json.dumps, lines)) + "\n\n")
    split = FolderSplit(str(manifest), name="my_photos")
    assert split.item_ids() == ["cat", "d"] and split.name == "my_photos" and split.has_masks
    assert split.load("d").target == "a wolf"


def test_every_bad_csv_line_is_reported_together_with_its_line_number(tmp_path: Path) -> None:
    _good_folder(tmp_path)
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG not really")
    _mask(tmp_path / "masks" / "small.png", size=(24, 20))
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "image,target,mask,colour\n"  # line 1: an unknown column
        "photos/cat.png,a raccoon,,red\n"  # line 2: fine
        "photos/gone.png,,,\n"  # line 3: no target, no such image
        "photos/missing.png,a fox,,\n"  # line 4: no such image
        "photos/broken.png,a fox,,\n"  # line 5: unreadable image
        "photos/dog.jpg,a wolf,masks/small.png,\n"  # line 6: mask of another size
        "photos/dog.jpg,a wolf,masks/none.png,\n"  # line 7: no such mask; repeats the id "dog"
    )
    with pytest.raises(SplitInputError) as error:
        FolderSplit(str(manifest))
    message = str(error.value)
    assert message.startswith("8 problem(s) in the manifest")
    for needle in (
        "line 1: unknown column(s) 'colour'",
        "line 3: missing required field(s) target",
        "line 3: file not found",
        "line 4: file not found",
        "line 5: unreadable image",
        "line 6: mask",
        "is 24x20, its image 48x40",
        "line 7: mask: file not found",
        "lines 6, 7: repeat the id 'dog'",
    ):
        assert needle in message, (needle, message)


def test_every_bad_jsonl_line_is_reported_together_with_its_line_number(tmp_path: Path) -> None:
    _good_folder(tmp_path)
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(
        "\n".join(
            [
                json.dumps({"image": "photos/cat.png", "target": "a raccoon"}),
                "{not json",
                json.dumps(["photos/cat.png", "a fox"]),
                json.dumps({"image": "photos/dog.jpg", "target": "a wolf", "strength": "0.5"}),
                json.dumps({"image": "photos/dog.jpg", "target": 3}),
                json.dumps({"image": "photos/cat.png", "target": "a lynx", "id": "a/b"}),
                json.dumps({"target": "a lynx"}),
                json.dumps({"image": "photos/cat.png", "target": "a lynx"}),
            ]
        )
    )
    with pytest.raises(SplitInputError) as error:
        FolderSplit(str(manifest))
    message = str(error.value)
    for needle in (
        "line 2: not valid JSON",
        "line 3: not a JSON object",
        "line 4: unknown key(s) 'strength'",
        "line 5: target must be text",
        "line 5: missing required field(s) target",
        "line 6: the id 'a/b' holds a path separator",
        "line 7: missing required field(s) image",
        "lines 1, 8: repeat the id 'cat'",
    ):
        assert needle in message, (needle, message)


def test_a_header_without_a_required_column_is_named_once(tmp_path: Path) -> None:
    manifest = tmp_path / "items.csv"
    manifest.write_text("picture,target\na.png,a fox\nb.png,a cat\n")
    with pytest.raises(SplitInputError) as error:
        FolderSplit(str(manifest))
    assert str(error.value).startswith("2 problem(s)") and "line 1: no column(s) image" in str(error.value)


def test_a_missing_or_misnamed_manifest_is_one_sentence(tmp_path: Path) -> None:
    for build, needle in (
        (lambda: FolderSplit(), "set dataset.manifest="),
        (lambda: FolderSplit(str(tmp_path / "items.txt")), "must be a .csv or .jsonl"),
        (lambda: FolderSplit(str(tmp_path / "items.csv")), "does not exist"),
    ):
        with pytest.raises(MissingFilesError) as error:
            build()
        assert needle in str(error.value) and "\n" not in str(error.value)


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )


def test_run_py_reports_a_bad_manifest_before_any_model_loads(tmp_path: Path) -> None:
    manifest = tmp_path / "items.csv"
    manifest.write_text("image,target\nmissing.png,a fox\n")
    result = _run("dataset=folder", f"dataset.manifest={manifest}", "model=sd14", "logger=none", f"paths.output_root={tmp_path}", timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "line 2: file not found" in result.stderr
    assert "Loading pipeline components" not in result.stderr  # no model was loaded (an uncached one is named with the rest)


@pytest.mark.slow
def test_run_py_edits_the_images_of_a_manifest(tmp_path: Path) -> None:
    _good_folder(tmp_path / "data")
    manifest = tmp_path / "data" / "items.csv"
    manifest.write_text("image,target,source,mask\nphotos/cat.png,a raccoon,a cat,masks/cat.png\nphotos/dog.jpg,a wolf,a dog,\n")
    out = tmp_path / "outputs"
    result = _run("dataset=folder", f"dataset.manifest={manifest}", "model=tiny", "logger=none", f"paths.output_root={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = ResultsTable(next(out.rglob("results.jsonl"))).frame().set_index("item_id")
    assert sorted(rows.index) == ["cat", "dog"] and (rows["status"] == "ok").all() and set(rows["dataset"]) == {"folder"}
    assert 0 <= rows.loc["cat", "mask_iou"] <= 100 and np.isnan(rows.loc["dog", "mask_iou"])
