"""Fetching the benchmark's files: verified downloads and safe archive extraction.

Nothing here retries or falls back: a file that cannot be fetched or does not match its
checksum stops the run with one sentence that says what to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm


class DownloadError(RuntimeError):
    """A benchmark file could not be fetched or verified; the message says how to fix it."""


@dataclass(frozen=True)
class RemoteFile:
    """A file at a fixed address with its checksum: sha256, or a git blob id (sha1 of "blob N\\0" + bytes)."""

    url: str
    sha256: str | None = None
    git_blob: str | None = None

    def verify(self, path: Path) -> None:
        data = path.read_bytes()
        if self.sha256 is not None and hashlib.sha256(data).hexdigest() != self.sha256:
            raise DownloadError(f"{path} does not match its sha256 {self.sha256}: delete it and run again.")
        if self.git_blob is not None and git_blob_id(data) != self.git_blob:
            raise DownloadError(f"{path} does not match its git blob id {self.git_blob}: delete it and run again.")


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: sha1 of ``b"blob <size>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fetch(remote: RemoteFile, path: Path, *, what: str, config_key: str, timeout: float = 30.0) -> Path:
    """``path`` verified against ``remote``'s checksum, downloaded first if absent.

    ``config_key`` is the setting that replaces the download (e.g. ``dataset.root=/path``); the
    error for a failed download names it.

    The download streams into a temporary file beside ``path`` and is renamed only once
    verified, so an interrupted download never leaves a file that looks complete.
    """
    if path.exists():
        remote.verify(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-", delete=False) as tmp:
        partial = Path(tmp.name)
        try:
            with urllib.request.urlopen(remote.url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {what}") as bar:
                    while chunk := response.read(1 << 20):
                        tmp.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            reason = getattr(error, "reason", error)
            raise DownloadError(f"Could not download {what} from {remote.url} ({reason}); put a copy at {path} or set {config_key}.") from None
    try:
        remote.verify(partial)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"The download of {what} from {remote.url} does not match its checksum.") from None
    partial.replace(path)
    return path


def extract_zip(archive: Path, target: Path, *, max_bytes: int = 2 << 30) -> Path:
    """Extract ``archive`` into ``target`` safely, atomically, once.

    Refuses absolute paths, ``..`` components, links and archives that would unpack to more
    than ``max_bytes``; extracts into a temporary folder renamed to ``target`` at the end.
    """
    if target.is_dir():
        return target
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        total = 0
        for member in members:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts or member.filename.startswith(("/", "\\")):
                raise DownloadError(f"{archive} holds an entry that escapes its folder ({member.filename!r}): refused.")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise DownloadError(f"{archive} holds a link ({member.filename!r}): refused.")
            total += member.file_size
        if total > max_bytes:
            raise DownloadError(f"{archive} would unpack to {total} bytes, over the {max_bytes}-byte cap: refused.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            for member in members:
                zf.extract(member, staging)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
