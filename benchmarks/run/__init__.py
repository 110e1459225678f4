"""Running a benchmark: the composed Hydra config checked before anything loads
(:mod:`~benchmarks.run.config_check`, called by :mod:`~benchmarks.run.callbacks`), wired into a
run by :mod:`~benchmarks.run.harness` (the only module that reads a config); the item loop that
edits, measures and appends one row per item, resumable and sharded (:mod:`~benchmarks.run.runner`
over the results table of :mod:`~benchmarks.run.results` and the run folder of
:mod:`~benchmarks.run.sharding`), stopping cleanly on signals (:mod:`~benchmarks.run.interrupts`),
logging to W&B (:mod:`~benchmarks.run.loggers`), one GPU per job on one machine
(:mod:`~benchmarks.run.gpus`), and merging a run folder's shards (:mod:`~benchmarks.run.merge`).
"""
