"""Stopping a run cleanly: the first SIGINT or SIGTERM asks it to stop after the batch in flight.

Ctrl-C sends SIGINT; ``kill``, ``timeout``, container runtimes and SLURM (on preemption or at
the time limit, followed by SIGKILL after a grace period) send SIGTERM. The first signal only
sets :attr:`StopRequest.signal`; the runner checks it between batches, so the batch in flight is
finished and written. A second signal raises :class:`Aborted` (a ``KeyboardInterrupt``) at once:
the batch in flight is lost, the rows written before it are not.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Set by the first stop signal: which one it was (None while none came)."""

    signal: signal.Signals | None = None


class _Stopped:
    signal: signal.Signals

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(self.signal)


class Interrupted(_Stopped, Exception):
    """A run stopped by a signal after writing the batch in flight; the message says how to resume."""

    def __init__(self, signal_: signal.Signals, written: int, left: int) -> None:
        super().__init__(
            f"Stopped by {signal_.name} after the batch in flight: {written} item(s) written by this run, {left} left; run the same command again to resume."
        )
        self.signal, self.written, self.left = signal_, written, left


class Aborted(_Stopped, KeyboardInterrupt):
    """A second stop signal: the run stopped at once, losing the batch in flight."""

    def __init__(self, signal_: signal.Signals) -> None:
        super().__init__(
            f"Stopped at once by a second signal ({signal_.name}): the batch in flight is lost, every row written "
            "before it is kept; run the same command again to resume."
        )
        self.signal = signal_


@contextmanager
def stop_after_batch(what: str = "the batch in flight") -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM sets the request; a second raises :class:`Aborted`.

    The previous handlers come back when the block ends. Signals reach only the main thread,
    so elsewhere (a worker thread) the block changes nothing and the request is never set.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(number: int, frame: object) -> None:
        if request.signal is not None:
            raise Aborted(signal.Signals(number))
        request.signal = signal.Signals(number)
        log.warning("%s: finishing %s, then stopping; send it again to stop at once.", request.signal.name, what)

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
