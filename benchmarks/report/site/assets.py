"""The files of the site besides its pages: its stylesheet and script, thumbnails, figures.

Everything a page shows is copied under the site's folder, so the site opens from the file
system (and from any copy of it) with no server and no network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from benchmarks.run.item_view import view_image

STATIC = ("site.css", "browser.js")
"""The stylesheet and the one script, shipped beside this module and copied into ``assets/``."""
JPEG_QUALITY = 88


def copy_static(site: Path) -> list[Path]:
    """``assets/site.css`` and ``assets/browser.js`` in ``site``."""
    folder = site / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(Path(__file__).with_name(name), folder / name)) for name in STATIC]


def copy_figures(pngs: Iterable[Path], site: Path) -> list[str]:
    """Copy the report's PNG figures into ``figures/``; their paths relative to ``site``."""
    folder = site / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for png in pngs:
        target = folder / png.name
        if target.resolve() != png.resolve():  # a site written into the report's own folder
            shutil.copyfile(png, target)
        copied.append(f"figures/{png.name}")
    return copied


class Thumbnails:
    """Writes each image of an item view once, as a bounded thumbnail under ``thumbs/``: photos as
    JPEG, masks and strips as PNG."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self._done: dict[Path, str] = {}

    def add(self, source: Path | None, name: str) -> str | None:
        """The thumbnail of ``source`` (None: no image) at ``thumbs/<name>.jpg`` or ``.png``;
        its path relative to the site. ``name`` is made of safe names joined by ``/``."""
        if source is None:
            return None
        if source not in self._done:
            picture = view_image(source)
            photo = picture.mode == "RGB"
            relative = f"thumbs/{name}.{'jpg' if photo else 'png'}"
            target = self.site / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            picture.save(target, **({"quality": JPEG_QUALITY} if photo else {"optimize": True}))
            self._done[source] = relative
        return self._done[source]
