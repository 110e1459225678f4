"""A split's input files: opened as every split opens them, and checked up front.

Every split looks up the files its items need when it is built, before any model loads, and a
missing one is a :class:`MissingFilesError` naming the file, the config key and what the folder
must hold. A split that reads user-supplied files (a manifest, the PIE-Bench mapping file) checks
all of them and collects every problem with its place (a line of the manifest, an item id) in
:class:`Problems`, so that one run shows the user everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class MissingFilesError(RuntimeError):
    """Items of a split have no file; the message lists them and what was found."""


class ImageDecodeError(ValueError):
    """An image file whose pixels cannot be shown as 8-bit RGB; the message names the file and why."""


def to_8bit(image: PIL.Image.Image, background: int) -> PIL.Image.Image:
    """``image`` as 8-bit ``L`` or ``RGB``, as a viewer shows it.

    16-bit and 32-bit integer images (modes ``I;16*``, ``I``: PNG and TIFF store 16 bits) are
    scaled to 8 bits (``value >> 8``, values outside 0..65535 clipped), never clipped at 255;
    float images (``F``) must hold values in [0, 1] and are scaled by 255; a palette (with or
    without transparency), CMYK and the other modes go through Pillow's own conversion. An image
    with transparency (``LA``, ``RGBA``, a palette's transparent colour) is composited over a
    uniform ``background`` (0..255) rather than having its alpha dropped, which would reveal
    whatever colour its transparent pixels hold.
    """
    if image.mode in ("1", "L", "RGB"):
        return image
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(np.int64)
        return PIL.Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageDecodeError(
                f"a float image must hold values in [0, 1], this one holds {np.nanmin(values):g}..{np.nanmax(values):g}: save it as an 8-bit or 16-bit image"
            )
        return PIL.Image.fromarray(np.round(values * 255).astype(np.uint8), "L")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if image.mode == "P" or has_alpha:
        image = image.convert("RGBA")
    if "A" in image.getbands():
        flat = PIL.Image.new("RGBA", image.size, (background, background, background, 255))
        return PIL.Image.alpha_composite(flat, image.convert("RGBA")).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageDecodeError(f"its mode {image.mode} has no conversion to RGB ({error}): save it as 8-bit RGB") from None


def open_image(path: Path, *, background: int = 255) -> PIL.Image.Image:
    """The image at ``path`` as a viewer shows it, in memory (the file closed): every input image
    and mask of every split is opened here.

    Its EXIF orientation is applied (a phone photo taken sideways is upright, as its mask is
    drawn), then it is made 8-bit ``L`` or ``RGB`` by :func:`to_8bit` (transparency over
    ``background``). Raises :class:`ImageDecodeError` naming the file for pixels that have no
    8-bit view.
    """
    with PIL.Image.open(path) as image:
        try:
            return to_8bit(PIL.ImageOps.exif_transpose(image), background)
        except ImageDecodeError as error:
            raise ImageDecodeError(f"{path}: {error}") from None


_TRANSPOSES = {
    2: PIL.Image.Transpose.FLIP_LEFT_RIGHT,
    3: PIL.Image.Transpose.ROTATE_180,
    4: PIL.Image.Transpose.FLIP_TOP_BOTTOM,
    5: PIL.Image.Transpose.TRANSPOSE,
    6: PIL.Image.Transpose.ROTATE_270,
    7: PIL.Image.Transpose.TRANSVERSE,
    8: PIL.Image.Transpose.ROTATE_90,
}
"""What each EXIF orientation asks a viewer to do, as :func:`PIL.ImageOps.exif_transpose` does it."""


def orient_like(mask: torch.Tensor, path: Path) -> torch.Tensor:
    """A mask (H x W) given in the stored pixels' frame of the image at ``path``, turned as
    :func:`open_image` turns the image (its EXIF orientation), so the two stay aligned."""
    with PIL.Image.open(path) as image:
        transpose = _TRANSPOSES.get(image.getexif().get(0x0112, 1))
    if transpose is None:
        return mask
    turned = PIL.Image.fromarray(mask.numpy().astype(np.float32), "F").transpose(transpose)
    return torch.from_numpy(np.array(turned)).to(mask.dtype)


def open_rgb(path: Path) -> PIL.Image.Image:
    """The image at ``path`` as 8-bit RGB (see :func:`open_image`; transparency over white)."""
    return open_image(path).convert("RGB")


def open_mask(path: Path, size: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
    """A binary mask (H x W float: 1 where the 8-bit grey level is over 127) for an image of
    ``size`` (W, H), and flags for what was off. Read as images are (see :func:`open_image`;
    transparency counts as black: outside the mask)."""
    flags = []
    mask = open_image(path, background=0).convert("L")
    if mask.size != size:
        flags.append(f"mask {mask.size[0]}x{mask.size[1]} resized (nearest) to the image's {size[0]}x{size[1]}")
        mask = mask.resize(size, PIL.Image.Resampling.NEAREST)
    binary = torch.from_numpy(np.array(mask) > 127).float()
    if binary.sum() == 0:
        flags.append("empty ground-truth mask: IoU undefined")
    return binary, flags


def image_problem(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """The image's (width, height) as :func:`open_image` shows it (decoded whole), or why it cannot be read."""
    try:
        found = path.is_file()
    except OSError as error:  # a name the file system refuses (too long, say): is_file() raises rather than answering
        return None, f"unusable path {str(path)[:200]} ({error.strerror})"
    if not found:
        return None, f"file not found: {path}"
    try:
        return open_image(path).size, None
    except ImageDecodeError as error:
        return None, f"unusable image {error}"
    except (OSError, PIL.UnidentifiedImageError, ValueError, PIL.Image.DecompressionBombError) as error:
        return None, f"unreadable image {path} ({error})"


class SplitInputError(MissingFilesError):
    """A split's files are missing or invalid; the message lists every problem with its place.

    A subclass of :class:`MissingFilesError` so that the harness reports it as it reports
    missing files: the message alone, no traceback, before any model loads.
    """


@dataclass
class Problems:
    """Problems found while validating a split's input, each with where it is."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, problem: str) -> None:
        self.items.append((where, problem))

    def raise_if_any(self, what: str, fix: str) -> None:
        """Raise :class:`SplitInputError` listing every problem, if there is any.

        ``what`` names the input ("the manifest /data/items.csv"), ``fix`` says what to do.
        """
        if not self.items:
            return
        lines = "\n".join(f"  {where}: {problem}" for where, problem in self.items)
        raise SplitInputError(f"{len(self.items)} problem(s) in {what}:\n{lines}\n{fix}")
