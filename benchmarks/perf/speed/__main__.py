"""``python -m benchmarks.perf.speed``."""

from benchmarks.perf.speed.cli import main

main()
