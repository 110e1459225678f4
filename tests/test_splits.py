"""The paper's splits: list parsing, verified downloads, safe extraction, file discovery, bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import authors_lists
import numpy as np
import PIL.Image
import pytest
import torch
from authors_lists import needs_lists

from benchmarks.data.downloads import (
    DownloadError,
    RemoteFile,
    extract_zip,
    fetch,
    git_blob_id,
)
from benchmarks.data.files import MissingFilesError, SplitInputError
from benchmarks.data.splits import (
    LISTS,
    EditingMaskSplit,
    ImageNetSplit,
    ImagenSplit,
    parse_list,
)
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, run
from instdiffedit import Capabilities, EditResult
from instdiffedit.backbones import ALL_FAMILIES

ROOT = Path(__file__).resolve().parents[1]


@needs_lists
@pytest.mark.parametrize("split,count", [("editing_mask", 200), ("imagenet", 1092), ("imagen", 360)])
def test_the_authors_lists_parse_to_their_sizes_and_match_our_checksums(split: str, count: int) -> None:
    data = authors_lists.path(split).read_bytes()
    assert hashlib.sha256(data).hexdigest() == LISTS[split].sha256
    entries = parse_list(data.decode("utf-8"))
    assert len(entries) == count
    assert not any("\r" in value for e in entries for value in (e.id, e.source, e.target, e.prompt or ""))


@needs_lists
def test_list_fields_follow_the_papers_edit_texts() -> None:
    editing = parse_list(authors_lists.path("editing_mask").read_text())
    assert sum(e.kind == "imagenet" for e in editing) == sum(e.kind == "imagen" for e in editing) == 100
    first = editing[0]
    assert (first.id, first.source, first.target) == ("1", "Shiba Inu dog", "a raccoon")
    assert first.prompt.startswith("An oil painting of a Shiba Inu dog")
    imagenet = parse_list(authors_lists.path("imagenet").read_text())
    beagle = imagenet[0]
    assert (beagle.id, beagle.source, beagle.target) == ("ILSVRC2012_val_00028602", "beagle", "a Afghan hound")
    assert beagle.meta == {"file": "ILSVRC2012_val_00028602.JPEG", "source_class": "beagle", "target_class": "Afghan hound"}
    assert len({e.meta["target_class"] for e in imagenet}) == 273


def test_a_line_with_the_wrong_number_of_fields_is_named_with_its_file() -> None:
    with pytest.raises(SplitInputError, match=r"in my_list.txt:\n  line 2: 2 fields separated by '<>'"):
        parse_list("1 <> p <> s <> t\r\nbroken <> line\r\n", "my_list.txt")


def test_git_blob_ids_are_computed_as_git_does() -> None:
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_a_verified_download_lands_whole_and_a_bad_checksum_leaves_nothing(tmp_path: Path) -> None:
    origin = tmp_path / "origin.txt"
    origin.write_bytes(b"1 <> p <> s <> t\n")
    good = RemoteFile(origin.as_uri(), sha256=hashlib.sha256(origin.read_bytes()).hexdigest())
    path = fetch(good, tmp_path / "cache" / "list.txt", what="a list", config_key="dataset.list_path")
    assert path.read_bytes() == origin.read_bytes()
    bad = RemoteFile(origin.as_uri(), git_blob="0" * 40)
    with pytest.raises(DownloadError, match="checksum"):
        fetch(bad, tmp_path / "other" / "list.txt", what="a list", config_key="dataset.list_path")
    assert list((tmp_path / "other").iterdir()) == []


def test_an_unreachable_download_fails_at_once_with_one_sentence(tmp_path: Path) -> None:
    remote = RemoteFile("http://127.0.0.1:9/missing.zip", sha256="0" * 64)  # nothing listens on port 9
    with pytest.raises(DownloadError) as error:
        fetch(remote, tmp_path / "x.zip", what="the archive", config_key="dataset.root=/path")
    assert "dataset.root=/path" in str(error.value) and "\n" not in str(error.value)


def _zip(path: Path, entries: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = 0o120777 << 16  # a symbolic link
            zf.writestr(info, "/etc/passwd")
    return path


def test_extraction_refuses_entries_that_escape_links_and_oversized_archives(tmp_path: Path) -> None:
    ok = extract_zip(_zip(tmp_path / "ok.zip", {"a/1.jpg": b"x", "b/1_mask.png": b"y"}), tmp_path / "ok")
    assert (ok / "a" / "1.jpg").read_bytes() == b"x"
    for name, archive in {
        "traversal": _zip(tmp_path / "t.zip", {"fine.txt": b"x", "../evil.txt": b"x"}),
        "absolute": _zip(tmp_path / "abs.zip", {"/etc/evil": b"x"}),
        "link": _zip(tmp_path / "l.zip", {"fine.txt": b"x"}, link="link"),
    }.items():
        with pytest.raises(DownloadError, match="refused"):
            extract_zip(archive, tmp_path / name)
        assert not (tmp_path / name).exists() and not (tmp_path / "evil.txt").exists()
    with pytest.raises(DownloadError, match="cap"):
        extract_zip(_zip(tmp_path / "big.zip", {"big": b"0" * 1000}), tmp_path / "big", max_bytes=100)


def _image(path: Path, size=(40, 30), colour=(200, 40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new("RGB", size, colour).save(path)


def _mask(path: Path, size=(40, 30), box=(10, 5, 30, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros(size[::-1], dtype=np.uint8)
    if box:
        pixels[box[1] : box[3], box[0] : box[2]] = 255
    PIL.Image.fromarray(pixels).save(path)


LIST_LINES = (
    "1 <> A photo of a Persian cat on a beach. <> Persian cat <> a Shiba Inu dog\r\n"
    "ILSVRC2012_val_00028602.JPEG <> beagle <> Afghan hound\r\n"
    "7 <> A painting of a panda. <> panda <> a raccoon\r\n"
)


@pytest.fixture
def editing_mask_folder(tmp_path: Path) -> Path:
    """A prepared Editing-Mask folder in a layout of our own: images and masks matched by stem."""
    root = tmp_path / "Editing-Mask"
    (root).mkdir()
    (root / "Editing-Mask_list.txt").write_bytes(LIST_LINES.encode())
    _image(root / "images" / "1.jpg")
    _mask(root / "masks" / "1.png")
    _image(root / "images" / "ILSVRC2012_val_00028602.JPEG")
    _mask(root / "ILSVRC2012_val_00028602_mask.png", size=(80, 60), box=(20, 10, 60, 40))  # another size
    _image(root / "images" / "7.jpg")
    _mask(root / "masks" / "7.png", box=None)  # empty
    return root


def test_a_prepared_editing_mask_folder_yields_items_with_masks_and_flags(editing_mask_folder: Path) -> None:
    split = EditingMaskSplit(root=str(editing_mask_folder))
    assert split.item_ids() == ["1", "ILSVRC2012_val_00028602", "7"]
    cat = split.load("1")
    assert (cat.target, cat.source, cat.prompt) == ("a Shiba Inu dog", "Persian cat", "A photo of a Persian cat on a beach.")
    assert cat.gt_mask.shape == (30, 40) and cat.gt_mask.sum() == 20 * 15 and cat.flags == ()
    beagle = split.load("ILSVRC2012_val_00028602")
    assert beagle.target == "a Afghan hound" and beagle.gt_mask.shape == (30, 40)
    assert beagle.gt_mask.sum() == 20 * 15 and "resized" in beagle.flags[0]
    assert split.load("7").flags == ("empty ground-truth mask: IoU undefined",)


def test_items_without_an_image_or_mask_are_all_listed_before_any_work(editing_mask_folder: Path) -> None:
    (editing_mask_folder / "masks" / "1.png").unlink()
    (editing_mask_folder / "images" / "7.jpg").unlink()
    with pytest.raises(MissingFilesError) as error:
        EditingMaskSplit(root=str(editing_mask_folder))
    message = str(error.value)
    assert "1 (mask)" in message and "7 (image)" in message and "found" in message


def test_imagenet_lists_every_missing_validation_image_up_front(tmp_path: Path) -> None:
    listing = tmp_path / "ImageNet_list.txt"
    listing.write_text("ILSVRC2012_val_00000001.JPEG <> beagle <> Afghan hound\nILSVRC2012_val_00000002.JPEG <> tabby <> tiger")
    val = tmp_path / "val"
    _image(val / "n02088364" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(MissingFilesError, match="ILSVRC2012_val_00000002.JPEG"):
        ImageNetSplit(root=str(val), list_path=str(listing))
    _image(val / "ILSVRC2012_val_00000002.JPEG")
    split = ImageNetSplit(root=str(val), list_path=str(listing))
    item = split.load("ILSVRC2012_val_00000002")
    assert (item.target, item.source, item.meta["target_class"]) == ("a tiger", "tabby", "tiger")
    with pytest.raises(MissingFilesError, match="dataset.root"):
        ImageNetSplit(root=None, list_path=str(listing))


def test_imagen_inputs_are_generated_once_per_model_and_seed_and_say_so(tiny, tmp_path: Path) -> None:
    listing = tmp_path / "Imagen_list.txt"
    listing.write_text("3 <> A photo of a red circle. <> red circle <> a blue square")
    split = ImagenSplit(list_path=str(listing), cache_dir=str(tmp_path / "cache"), steps=2, resolution=64)
    split.prepare(tiny.base)
    first = split.load("3")
    assert first.image.size == (64, 64) and "generated by" in first.meta["image_source"]
    cached = list((tmp_path / "cache" / "imagen").rglob("3.png"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = split.load("3")
    assert again.image.tobytes() == first.image.tobytes() and cached[0].stat().st_mtime_ns == mtime


class InputEditor:
    """Returns the input unchanged with an empty mask."""

    capabilities = Capabilities(families=ALL_FAMILIES)

    def edit(self, image, *, target, source=None, prompt=None, mask=None, generator=None) -> EditResult:
        return EditResult(image, mask=torch.zeros(image.height, image.width), timings={"total": 0.0})


@pytest.mark.parametrize("split", [EditingMaskSplit, ImageNetSplit, ImagenSplit])
def test_an_empty_root_folder_names_the_missing_file_and_what_the_folder_must_hold(split, tmp_path: Path) -> None:
    kind = {EditingMaskSplit: None, ImageNetSplit: "ILSVRC", ImagenSplit: " <> A "}[split]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(line + "\n" for line in LIST_LINES.splitlines() if kind and kind in line))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFilesError) as missing:
        split(root=str(tmp_path / "empty"), list_path=None if kind is None else str(listing))
    message = str(missing.value)
    expected = {EditingMaskSplit: "has no Editing-Mask_list.txt", ImageNetSplit: "ILSVRC2012_val_00028602.JPEG", ImagenSplit: ": 1, 7"}
    assert expected[split] in message and "dataset.root" in message and split.layout in message
    assert "\n" not in message


@pytest.mark.parametrize("split", [EditingMaskSplit, ImageNetSplit, ImagenSplit])
def test_the_splits_guide_describes_every_split_folders_layout(split) -> None:
    guide = " ".join((ROOT / "docs" / "splits.md").read_text(encoding="utf-8").split())
    assert split.layout in guide


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_an_archive_whose_top_folder_is_named_editing_mask_still_tells_images_from_masks(layout: str, tmp_path: Path) -> None:
    root = tmp_path / "files"
    top = root / "Editing-Mask"  # the word "mask" in a folder above every file
    (top).mkdir(parents=True)
    (top / "Editing-Mask_list.txt").write_bytes(LIST_LINES.encode())
    for item in ("1", "7", "ILSVRC2012_val_00028602"):
        _image(top / ("images" if layout == "folders" else "") / f"{item}.jpg")
        _mask(top / ("masks" / Path(f"{item}.png") if layout == "folders" else Path(f"{item}_mask.png")))
    split = EditingMaskSplit(root=str(root), list_path=str(top / "Editing-Mask_list.txt"))
    assert split.images["1"].suffix == ".jpg" and split.masks["1"].suffix == ".png"


def test_editing_mask_lists_the_target_classes_of_its_imagenet_style_items(editing_mask_folder) -> None:
    assert EditingMaskSplit(root=str(editing_mask_folder)).target_classes() == ["Afghan hound"]


def test_an_extracted_editing_mask_archive_in_the_cache_is_used_without_the_archive(editing_mask_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    (cache / "editing_mask").mkdir(parents=True)
    listing = editing_mask_folder / "Editing-Mask_list.txt"
    editing_mask_folder.rename(cache / "editing_mask" / "files")
    split = EditingMaskSplit(list_path=str(cache / "editing_mask" / "files" / listing.name), cache_dir=str(cache))
    assert sorted(split.item_ids()) == ["1", "7", "ILSVRC2012_val_00028602"]


def test_a_run_with_a_corrupt_image_finishes_and_records_the_failed_and_flagged_items(editing_mask_folder, tmp_path) -> None:
    (editing_mask_folder / "images" / "1.jpg").write_bytes(b"not a jpeg")
    split = EditingMaskSplit(root=str(editing_mask_folder))
    table = ResultsTable(tmp_path / "results.jsonl")
    summary = run(InputEditor(), split, table, RunSpec(method="input", config_id="c", master_seed=0))
    rows = table.frame().set_index("item_id")
    assert rows.loc["1", "status"] == "failed" and "UnidentifiedImageError" in rows.loc["1", "error"]
    assert rows.loc["7", "status"] == "ok" and "empty" in rows.loc["7", "flags"]
    assert (summary.loc[("input", "c"), "failed"], summary.loc[("input", "c"), "flagged"]) == (1, 2)


def test_run_py_on_editing_mask_offline_stops_at_once_with_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "INSTDIFFEDIT_CACHE": str(tmp_path / "empty-cache")}
    result = subprocess.run(
        [sys.executable, "run.py", "model=tiny", "dataset=editing_mask", "logger=none", f"paths.output_root={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: Could not download the editing_mask list") and "dataset.list_path=" in message


@pytest.mark.slow
def test_run_py_on_a_prepared_editing_mask_folder_runs(editing_mask_folder: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "model=tiny",
            "dataset=editing_mask",
            f"dataset.root={editing_mask_folder}",
            "logger=none",
            f"paths.output_root={tmp_path / 'out'}",
            "method.num_inference_steps=10",
            "method.inpaint_steps=4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = ResultsTable(next((tmp_path / "out").rglob("results.jsonl"))).frame()
    assert sorted(rows["item_id"]) == ["1", "7", "ILSVRC2012_val_00028602"] and (rows["status"] == "ok").all()
