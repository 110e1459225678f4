"""Images as viewers show them: every input image and mask, whatever its mode, orientation or depth,
is read as the 8-bit picture a viewer shows, by one function (benchmarks.data.files.open_image)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from pie_layout import ITEMS, encode_runs, write_pie_bench

from benchmarks.data.files import ImageDecodeError, open_mask, open_rgb
from benchmarks.data.folder_split import FolderSplit
from benchmarks.data.pie_bench import PieBenchSplit

ORIENTATION = 0x0112


def _sideways_jpeg(path: Path, orientation: int = 6) -> np.ndarray:
    """A 40 x 20 (W x H) JPEG whose EXIF asks viewers to turn it (6: 90 degrees clockwise); its stored pixels."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (250, 0, 0)  # left half red, as stored
    image = PIL.Image.fromarray(pixels)
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif, quality=100)
    return pixels


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    PIL.Image.fromarray(values).save(tmp_path / "deep.png")
    with PIL.Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode.startswith("I")
    rgb = np.asarray(open_rgb(tmp_path / "deep.png"))
    assert np.array_equal(rgb[..., 0], (values >> 8).astype(np.uint8))
    assert (rgb == 255).mean() < 0.02  # clipped at 255, ~99.6 % of it would be white


def test_a_32_bit_integer_image_is_read_as_16_bits() -> None:
    from benchmarks.data.files import to_8bit

    image = PIL.Image.fromarray(np.array([[0, 256, 65535, 70000, -5]], np.int32), "I")
    assert np.asarray(to_8bit(image, 255)).tolist() == [[0, 1, 255, 255, 0]]


def test_a_float_image_in_0_1_is_scaled_and_one_outside_is_refused_naming_the_file(tmp_path: Path) -> None:
    PIL.Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(tmp_path / "unit.tif")
    assert np.asarray(open_rgb(tmp_path / "unit.tif"))[0, :, 0].tolist() == [0, 128, 255]
    PIL.Image.fromarray(np.array([[0.0, 200.0]], np.float32), "F").save(tmp_path / "wide.tif")
    with pytest.raises(ImageDecodeError, match=r"wide\.tif: a float image must hold values in \[0, 1\]"):
        open_rgb(tmp_path / "wide.tif")


def test_a_palette_image_with_transparency_shows_white_and_its_mask_reads_transparent_as_outside(tmp_path: Path) -> None:
    image = PIL.Image.new("P", (4, 1))
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # 0 white, 1 black
    image.putdata([1, 1, 0, 0])
    image.info["transparency"] = 1  # the black entries are transparent
    image.save(tmp_path / "palette.png")
    assert np.asarray(open_rgb(tmp_path / "palette.png"))[0].tolist() == [[255, 255, 255]] * 4
    mask, _ = open_mask(tmp_path / "palette.png", (4, 1))
    assert mask[0].tolist() == [0, 0, 1, 1]


def test_rgba_and_la_are_composited_over_white_not_stripped_of_alpha(tmp_path: Path) -> None:
    pixels = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [200, 100, 0, 128]]], np.uint8)
    PIL.Image.fromarray(pixels, "RGBA").save(tmp_path / "rgba.png")
    rgb = np.asarray(open_rgb(tmp_path / "rgba.png")).astype(int)
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [0, 0, 0]
    assert np.abs(rgb[0, 2] - [227, 177, 127]).max() <= 1
    PIL.Image.fromarray(pixels[..., [0, 3]], "LA").save(tmp_path / "la.png")
    assert np.asarray(open_rgb(tmp_path / "la.png"))[0, 0].tolist() == [255, 255, 255]


def test_a_cmyk_jpeg_reads_as_its_rgb_colours(tmp_path: Path) -> None:
    PIL.Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=100)  # pure cyan
    assert np.abs(np.asarray(open_rgb(tmp_path / "cmyk.jpg")).astype(int) - [0, 255, 255]).max() <= 3


def test_exif_orientation_is_applied_to_images_and_masks_alike(tmp_path: Path) -> None:
    stored = _sideways_jpeg(tmp_path / "photo.jpg")
    image = open_rgb(tmp_path / "photo.jpg")
    assert image.size == (20, 40)  # upright: 20 wide, 40 high
    upright = np.rot90(stored, k=-1)  # turned 90 degrees clockwise
    assert np.array_equal(np.asarray(image)[..., 0] > 127, upright[..., 0] > 127)  # the red half where a viewer shows it
    mask_pixels = (stored[..., 0] > 127).astype(np.uint8) * 255
    PIL.Image.fromarray(mask_pixels).save(tmp_path / "mask.jpg", exif=PIL.Image.open(tmp_path / "photo.jpg").getexif(), quality=100)
    mask, flags = open_mask(tmp_path / "mask.jpg", image.size)
    assert flags == [] and np.array_equal(mask.numpy() > 0, upright[..., 0] > 127)


def test_a_phone_photo_with_a_mask_drawn_upright_passes_the_manifest_check(tmp_path: Path) -> None:
    _sideways_jpeg(tmp_path / "photo.jpg")
    PIL.Image.new("L", (20, 40), 255).save(tmp_path / "mask.png")  # drawn on the photo as a viewer shows it
    (tmp_path / "items.csv").write_text("image,mask,target\nphoto.jpg,mask.png,a dog\n")
    item = FolderSplit(str(tmp_path / "items.csv")).load("photo")
    assert item.image.size == (20, 40) and tuple(item.gt_mask.shape) == (40, 20) and item.flags == ()


def test_a_16_bit_mask_is_thresholded_at_half_its_range(tmp_path: Path) -> None:
    PIL.Image.fromarray(np.array([[20000, 40000, 0, 65535]], np.uint16)).save(tmp_path / "mask16.png")
    mask, _ = open_mask(tmp_path / "mask16.png", (4, 1))
    assert mask[0].tolist() == [0, 1, 0, 1]


def test_a_pie_bench_mask_turns_with_its_image(tmp_path: Path) -> None:
    item_id = next(iter(ITEMS))
    root = write_pie_bench(tmp_path, {item_id: ITEMS[item_id]})
    path = root / "annotation_images" / ITEMS[item_id]["image_path"]
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :16] = 255  # a white box at the stored top left, and the mask's runs over it
    image = PIL.Image.fromarray(stored)
    exif = image.getexif()
    exif[ORIENTATION] = 8  # viewers turn it 90 degrees counter-clockwise
    image.save(path, exif=exif, quality=100)
    mapping = json.loads((root / "mapping_file.json").read_text())
    mapping[item_id]["mask"] = encode_runs(stored[..., 0] > 127)
    (root / "mapping_file.json").write_text(json.dumps(mapping))
    item = PieBenchSplit(str(root)).load(item_id)
    assert item.image.size == (32, 64)
    white = np.asarray(item.image)[..., 0] > 127
    assert np.array_equal(item.gt_mask.numpy() > 0, white)
