"""Running a benchmark: the composed Hydra config checked before anything loads
(:mod:`~benchmarks.run.config_check`, called by :mod:`~benchmarks.run.callbacks`) and wired into
a run by :mod:`~benchmarks.run.harness` (the only module that reads a config); the item loop that
edits, measures and appends one row per item, resumable and sharded (:mod:`~benchmarks.run.runner`),
into the results table of :mod:`~benchmarks.run.results` in the run folder of
:mod:`~benchmarks.run.folder` (which names every file in it and is the one reader of its rows);
one writer per results file (:mod:`~benchmarks.run.lock`), writes that fail as one sentence
(:mod:`~benchmarks.run.writes`), stopping cleanly on signals (:mod:`~benchmarks.run.interrupts`), logging to W&B
(:mod:`~benchmarks.run.loggers`), one GPU per job on one machine (:mod:`~benchmarks.run.gpus`),
and merging a run folder's shards (:mod:`~benchmarks.run.merge`).
"""
