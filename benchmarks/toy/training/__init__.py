"""The toy models' training and cards, apart from what a run needs (:mod:`benchmarks.toy`).

Training (``python -m benchmarks.toy.training.train``): :mod:`~benchmarks.toy.training.config`,
the networks (:mod:`~benchmarks.toy.training.nets`, :mod:`~benchmarks.toy.training.denoisers`),
the inpainting masks drawn (:mod:`~benchmarks.toy.training.masks`), the graphed steps
(:mod:`~benchmarks.toy.training.steps`), the measurements (:mod:`~benchmarks.toy.training.evaluation`)
and the folders written (:mod:`~benchmarks.toy.training.folders`). The cards
(``python -m benchmarks.toy.training.card``) and their attention table alone
(``python -m benchmarks.toy.training.attention_probe``) read what training and runs wrote.
"""
