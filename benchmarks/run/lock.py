"""One writer per results file: a second process on the same run folder and shard stops at once,
naming the process that holds it.

The lock is an advisory ``flock`` on ``<results file>.lock`` (:attr:`benchmarks.run.folder.Shard.lock_name`),
whose text names its holder (pid, host, since when). The kernel releases the lock when the
holder's process ends, however it ends (SIGKILL included): a lock file left by a process that
died blocks nobody, and the next run takes it over. Shards of one run write different files and
hold different locks, so they still run side by side.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from benchmarks.run.writes import writing


class RunFolderLocked(Exception):
    """Another live process writes the same results file; the message names it and what to do."""


class WriterLock:
    """The lock of one results file, held from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and record this process in it; raise :class:`RunFolderLocked` at once if another holds it."""
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # mode as open() creates files: umask applies
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0))
            os.close(fd)
            results = self.path.name.removesuffix(".lock")
            raise RunFolderLocked(
                f"{holder} is writing {results} in {self.path.parent}: wait for it to end (or stop it), then run the same "
                "command again; shards of one run (shard.index, shard.count) may run side by side."
            ) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        with writing(self.path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd

    def release(self, *, remove: bool = False) -> None:
        """Let go of the lock; ``remove`` deletes its file too (a run that never started leaves none)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None


def _holder(text: bytes) -> str:
    """Who a lock file names: ``"process 1234 on host-a (since ...)"``, or ``"another process"``
    when it names none yet (its holder is between taking the lock and writing its name)."""
    try:
        record = json.loads(text)
        return f"process {int(record['pid'])} on {record['host']} (since {record['since']})"
    except (ValueError, TypeError, KeyError):
        return "another process"
