"""The speed benchmark: every method at paper settings, in one process on one device
(``python -m benchmarks.perf.speed``, ``make bench``; its options: :mod:`.cli`).

:mod:`.models` builds the model, :mod:`.methods` and :mod:`.modes` say what is timed and how,
:mod:`.timing` measures one (method, mode), :mod:`.recording` records an edit's denoiser calls and
replays them alone (the floors), :mod:`.clock` holds the device's clock and the time budget,
:mod:`.tables` writes the results and the sections of docs/speed.md.
"""

from benchmarks.perf.speed.cli import main

__all__ = ["main"]
