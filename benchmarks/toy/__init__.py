"""The toy world: procedural scenes of a few coloured shapes whose every pixel's truth is known,
and the small models trained on them that every method runs on as on Stable Diffusion.

This package is what a run needs: the scenes (:mod:`~benchmarks.toy.render`, layouts and exact
visible instance masks, vectorised, the same on CPU and GPU for a seed, and
:mod:`~benchmarks.toy.captions`); the ``toy_shapes`` edit split drawn from them
(:mod:`~benchmarks.toy.split`) and its ``edit_success`` metric (:mod:`~benchmarks.toy.success`,
with the object classifier of :mod:`~benchmarks.toy.classifier`); and the trained models shipped
in ``models/toy*`` (:mod:`~benchmarks.toy.model`). Their training and their cards live in
:mod:`benchmarks.toy.training`, which nothing here imports. Import from the modules
(``from benchmarks.toy.render import render``); the package re-exports nothing.
"""
