"""Item ids are names, never paths: every reader refuses an id that is not one, naming its file and
line, and every file a run or a cache writes for an item is its own."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import PIL.Image
import pytest
import torch
from pie_layout import write_pie_bench

from benchmarks.data.files import SplitInputError
from benchmarks.data.folder_split import FolderSplit
from benchmarks.data.ids import id_problem
from benchmarks.data.items import EditItem
from benchmarks.data.pie_bench import PieBenchSplit
from benchmarks.data.splits import ImagenSplit, ListEntry, parse_list
from benchmarks.run.folder import (
    EDIT,
    GROUND_TRUTH,
    INPUT,
    MASK,
    STEPS,
    ItemImages,
    RunFolder,
    find_image,
)
from instdiffedit import EditResult

BAD_IDS = ["../escape", "/etc/passwd", "a/b", "a\\b", "a\0b", "a\nb", ".", ".."]


@pytest.mark.parametrize("item_id", [i for i in BAD_IDS if "\n" not in i])  # a newline ends a list's line
def test_an_authors_list_refuses_an_id_that_is_no_name_naming_its_file_and_line(item_id: str) -> None:
    with pytest.raises(SplitInputError, match=r"in lists/imagen\.txt:\n  line 2: the id"):
        parse_list(f"1 <> a cat <> cat <> dog\n{item_id} <> a cat <> cat <> dog\n", "lists/imagen.txt")


def test_an_imagenet_style_line_refuses_a_file_that_is_a_path() -> None:
    with pytest.raises(SplitInputError, match="line 1: the image file must be a name"):
        parse_list("../../x/ILSVRC2012_val_00000001.JPEG <> beagle <> Afghan hound\n", "list.txt")


@pytest.mark.parametrize("item_id", BAD_IDS)
def test_a_manifest_refuses_an_id_that_is_no_name_naming_its_line(tmp_path: Path, item_id: str) -> None:
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(json.dumps({"image": "a.png", "target": "a dog", "id": item_id}) + "\n")
    with pytest.raises(SplitInputError, match=r"items\.jsonl:\n  line 1: the id"):
        FolderSplit(str(manifest))


@pytest.mark.parametrize("item_id", ["../escape", "a/b", "..", "a\0b"])
def test_pie_bench_refuses_an_id_that_is_no_name(tmp_path: Path, item_id: str) -> None:
    root = write_pie_bench(tmp_path)
    mapping = json.loads((root / "mapping_file.json").read_text())
    mapping[item_id] = next(iter(mapping.values()))
    (root / "mapping_file.json").write_text(json.dumps(mapping))
    with pytest.raises(SplitInputError, match="the id"):
        PieBenchSplit(str(root))


def test_an_imagen_list_with_a_parent_path_id_writes_nothing_outside_the_cache(tmp_path: Path) -> None:
    listed = tmp_path / "list.txt"
    listed.write_text("1 <> a cat <> cat <> dog\n../../outside <> a cat <> cat <> dog\n")
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(SplitInputError, match="line 2: the id '../../outside' holds a path separator"):
        ImagenSplit(list_path=str(listed), cache_dir=str(cache))
    # And were a bad id to reach the generator, it is refused before any file is named by it.
    good = tmp_path / "good.txt"
    good.write_text("1 <> a cat <> cat <> dog\n")
    split = ImagenSplit(list_path=str(good), cache_dir=str(cache))
    split.entries["../../outside"] = ListEntry("../../outside", "imagen", "cat", "dog", "a cat")
    split.prepare(_Generator())
    with pytest.raises(ValueError, match="holds a path separator"):
        split.load("../../outside")
    assert split.load("1").image.size == (8, 8)
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()) == ["deep", "good.txt", "list.txt"]
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["1.png"]


class _Generator:
    """A stand-in base model: a grey image for any prompt."""

    config = SimpleNamespace(_name_or_path="fake")

    def __call__(self, prompt: str, **settings: object) -> SimpleNamespace:
        return SimpleNamespace(images=[PIL.Image.new("RGB", (8, 8), (128, 128, 128))])


def _item(item_id: str, shade: int) -> tuple[EditItem, EditResult]:
    image = PIL.Image.new("RGB", (8, 8), (shade, 0, 0))
    mask = torch.full((8, 8), float(shade % 2))
    item = EditItem(item_id, image, "a dog", gt_mask=mask)
    result = EditResult(PIL.Image.new("RGB", (8, 8), (0, shade, 0)), mask=1 - mask, mask_history=torch.zeros(2, 8, 8, dtype=torch.bool))
    return item, result


def test_no_two_ids_map_to_one_file_of_a_run(tmp_path: Path) -> None:
    # Ids that differ by what earlier versions appended to an id (cat's mask was cat.mask.png, the
    # edit of the item cat.mask too), by a file kind's name, or by case.
    ids = ["cat", "cat.mask", "cat.input", "cat.gt", "cat.steps", "cat.png", "edit.png", "input", "Cat", ".hidden"]
    image_dir = tmp_path / "images"
    files: dict[Path, str] = {}
    for shade, item_id in enumerate(ids, 1):
        item, result = _item(item_id, shade)
        ItemImages(image_dir).save(item, result)
        for kind in (EDIT, MASK, INPUT, GROUND_TRUTH, STEPS):
            path = find_image([tmp_path], item_id, kind)
            assert path is not None and path not in files, f"{item_id} and {files.get(path)} share {path}"
            files[path] = item_id
    for shade, item_id in enumerate(ids, 1):  # each file still holds its own item's pixels
        with PIL.Image.open(find_image([tmp_path], item_id, INPUT)) as saved:
            assert saved.getpixel((0, 0)) == (shade, 0, 0), item_id
        with PIL.Image.open(find_image([tmp_path], item_id, EDIT)) as saved:
            assert saved.getpixel((0, 0)) == (0, shade, 0), item_id
    assert RunFolder(tmp_path).images.saved_items() == sorted(ids)
    assert all(path.parent.parent == image_dir for path in files)


def test_run_folders_of_earlier_versions_are_still_read(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    PIL.Image.new("RGB", (4, 4), (9, 9, 9)).save(images / "old.input.png")
    PIL.Image.new("RGB", (4, 4)).save(images / "old.png")
    assert RunFolder(tmp_path).images.saved_items() == ["old"]
    assert find_image([tmp_path], "old", INPUT) == images / "old.input.png"
    assert find_image([tmp_path], "old", EDIT) == images / "old.png"
    assert find_image([tmp_path], "old", MASK) is None


def test_the_id_rule_accepts_the_benchmarks_ids() -> None:
    for item_id in ("1", "ILSVRC2012_val_00028602", "000000000000", "synthetic-00003", "toy-00001", "my photo (2).v1"):
        assert id_problem(item_id) is None
