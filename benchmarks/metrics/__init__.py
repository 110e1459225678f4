"""The metrics of edited images, along their seams: pure functions over tensors
(:mod:`~benchmarks.metrics.functional`), per-item metrics called as ``metric(item, result)`` for
the item's row (:mod:`~benchmarks.metrics.per_item`; PIE-Bench's set in
:mod:`~benchmarks.metrics.pie_bench`), corpus metrics over a whole run's saved edits (FID,
SFID/CSFID: :mod:`~benchmarks.metrics.corpus`, with the ImageNet-train means made by
:mod:`~benchmarks.metrics.feature_means`), the loading of their weights with one sentence when
they cannot be had (:mod:`~benchmarks.metrics.weights`), ImageNet's class names
(:mod:`~benchmarks.metrics.imagenet_classes`) and the trivial masks' IoU that gives mask IoU a
floor (:mod:`~benchmarks.metrics.references`). Metrics read items and edits, never a config or a
run folder; the harness builds them from ``conf/metrics/*.yaml`` before any editing starts.
"""
