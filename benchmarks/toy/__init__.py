"""The toy world: procedural scenes of a few coloured shapes whose every pixel's truth is known.

* :mod:`benchmarks.toy.render` draws scene layouts and renders them (images and exact visible
  instance masks), vectorised over scenes, the same on CPU and GPU for a seed;
* :mod:`benchmarks.toy.captions` writes a layout's caption and tokenises captions in bulk;
* :mod:`benchmarks.toy.split` is the ``toy_shapes`` edit benchmark drawn from the renderer.

Import from the modules (``from benchmarks.toy.render import render``); the package re-exports
nothing, so ``benchmarks.toy.render`` stays the module.
"""
