"""The splits: what to edit. Each split lists its items by id and yields them one at a time as
:class:`~benchmarks.data.items.EditItem` (the input image, the edit texts, the ground-truth mask
where known), and checks every file it needs when it is built, before any model loads: the
paper's splits (:mod:`~benchmarks.data.splits`: Editing-Mask, ImageNet, Imagen, their lists
downloaded and verified by :mod:`~benchmarks.data.downloads`), PIE-Bench
(:mod:`~benchmarks.data.pie_bench`), the user's own images (:mod:`~benchmarks.data.folder_split`)
and the generated synthetic split (:mod:`~benchmarks.data.synthetic`); the toy split lives with
the toy world (:mod:`benchmarks.toy.split`). Nothing here knows a method, a metric or a run.
"""
