"""``PYTHONPATH=. python tests/patched_run.py FAULT [run.py overrides ...]``: run.py with a stand-in or a fault, for
tests of how a run ends. Nothing here changes a result: the stand-ins only make the run fast
(no model is built; every edit returns its input and the ground-truth mask at once) or make
one part fail the way the world does (a full disk, a slow model download).

Faults: ``instant_edits``; ``every_edit_fails``; ``disk_full`` (every image write raises
ENOSPC); ``slow_model_load`` (loading the model prints ``LOADING`` on stderr, then waits).
"""

from __future__ import annotations

import errno
import functools
import os
import runpy
import sys
import time
from pathlib import Path

import PIL.Image

import benchmarks.models.tiny
import instdiffedit
from benchmarks.models.loading import Pipelines
from instdiffedit.types import EditResult

ROOT = Path(__file__).resolve().parents[1]


def _no_model() -> None:
    original = benchmarks.models.tiny.tiny_pipelines

    @functools.wraps(original)  # the config check reads its signature
    def no_model(*args, **kwargs) -> Pipelines:
        return Pipelines(base=None, inpaint=None)

    benchmarks.models.tiny.tiny_pipelines = no_model


def _instant_edits() -> None:
    _no_model()
    editor = instdiffedit.InstDiffEdit

    @functools.wraps(editor.__init__)
    def init(self, base, inpaint, **settings) -> None:
        pass

    def edit(self, image, *, target, source=None, prompt=None, mask=None, generator=None) -> EditResult:
        return EditResult(image=image.convert("RGB"), mask=mask, timings={"total": 0.0})

    def edit_batch(self, images, *, targets, sources, prompts, masks, generators) -> list[EditResult]:
        return [edit(self, image, target=target, mask=mask) for image, target, mask in zip(images, targets, masks, strict=True)]

    editor.__init__, editor.edit, editor.edit_batch = init, edit, edit_batch


def _every_edit_fails() -> None:
    _instant_edits()

    def fail(self, *args, **kwargs):
        raise RuntimeError("simulated editing failure")

    instdiffedit.InstDiffEdit.edit = instdiffedit.InstDiffEdit.edit_batch = fail


def _disk_full() -> None:
    _instant_edits()

    def save(self, fp, *args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    PIL.Image.Image.save = save


def _slow_model_load() -> None:
    original = benchmarks.models.tiny.tiny_pipelines

    @functools.wraps(original)
    def slow(*args, **kwargs) -> Pipelines:
        print("LOADING", file=sys.stderr, flush=True)
        time.sleep(600)
        raise AssertionError("the test should have stopped the run by now")

    benchmarks.models.tiny.tiny_pipelines = slow


FAULTS = {"instant_edits": _instant_edits, "every_edit_fails": _every_edit_fails, "disk_full": _disk_full, "slow_model_load": _slow_model_load}

if __name__ == "__main__":
    fault, *overrides = sys.argv[1:]
    FAULTS[fault]()
    sys.argv = ["run.py", *overrides]
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
