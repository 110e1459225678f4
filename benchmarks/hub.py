"""The Hugging Face hub as every loader of the harness reads it: the local cache first (no network
needed), then, unless the hub is off (``HF_HUB_OFFLINE``), a download; and, when neither works,
the clause that says why, for the loader's own one-sentence error (a model's, a metric's).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import RepositoryNotFoundError

T = TypeVar("T")

NOT_CACHED_OFFLINE = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
_TRUTHY = {"1", "on", "yes", "true"}


class NotOnHub(Exception):
    """Neither the cache nor the hub had it; :attr:`reason` is the clause for the loader's sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set, read at call time (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def cached_file(repo_id: str, filename: str) -> str | None:
    """The local path of ``filename`` of hub repository ``repo_id`` when the cache holds it, else None."""
    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def cached_or_downloaded(load: Callable[[bool], T], errors: tuple[type[BaseException], ...] = (OSError,)) -> T:
    """``load(local_files_only=True)``, from the cache; when that fails with one of ``errors`` and the
    hub is on, ``load(False)``, which downloads. Raises :class:`NotOnHub` when neither works."""
    try:
        return load(True)
    except errors:
        pass
    if hub_offline():
        raise NotOnHub(NOT_CACHED_OFFLINE)
    try:
        return load(False)
    except errors as error:
        raise NotOnHub(f"not in the local Hugging Face cache and {download_failure(error)}") from None


def download_failure(error: BaseException) -> str:
    """A short clause for why a download failed, found along the exception chain."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, RepositoryNotFoundError):
            return "the hub has no such repository, or it is gated and needs `hf auth login`"
        cause = cause.__cause__ or cause.__context__
    return "the hub is unreachable"
