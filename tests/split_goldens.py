"""The golden cases of tests/test_split_goldens.py: each split's rows through the runner, with its metrics.

Every split is built as a user builds it (the toy and synthetic splits in code; Editing-Mask,
ImageNet and Imagen from fabricated folders in their real layouts with the authors' lists;
PIE-Bench and a folder manifest from the layouts of their own tests), two of its items are
edited by InstDiffEdit on the tiny SD model with fixed seeds, and the rows the runner writes
are measured by the split's metric set (model-backed metrics with small random models built
from fixed seeds, as ``tests/test_all_metrics.py`` injects them). The numbers mean nothing;
they pin the loading, the metrics and the runner's rows.

Shared by the test and by the script that wrote its expected values
(``INSTDIFFEDIT_LISTS=... python tests/split_goldens.py``), so both compute exactly the same rows.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import authors_lists
from fakes import ChannelMeans, paper_metrics, random_lpips, tiny_clip, tiny_dino
from hub_cache import _image
from pie_layout import write_pie_bench

from benchmarks.data.pie_bench import PieBenchSplit
from benchmarks.data.splits import (
    EditingMaskSplit,
    ImageNetSplit,
    ImagenSplit,
    parse_list,
)
from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.metrics.corpus import FID, SFID
from benchmarks.metrics.feature_means import compute_feature_means
from benchmarks.metrics.imagenet_classes import imagenet_class_index, imagenet_names
from benchmarks.metrics.per_item import (
    BackgroundPreservation,
    ChangingRate,
    MaskIoU,
)
from benchmarks.metrics.pie_bench import (
    PieBackground,
    PieCLIPSimilarity,
    StructureDistance,
)
from benchmarks.run.folder import Shard
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, run
from benchmarks.toy.split import ToyShapesSplit
from benchmarks.toy.success import EditSuccess
from instdiffedit import InstDiffEdit

MASTER_SEED = 4623523532252
VOLATILE = ("seconds", "finished_at")
"""Row columns that are no result (wall-clock), left out of the goldens."""


def _default_metrics() -> dict[str, Any]:
    """``metrics=default`` (``conf/metrics/default.yaml``) without the toy-only edit success."""
    return {"mask_iou": MaskIoU(), "changing_rate": ChangingRate(), "background": BackgroundPreservation(lpips=False)}


def _paper_metrics(dataset: Any) -> dict[str, Any]:
    """``metrics=paper``'s per-item metrics with small random models, prepared for ``dataset`` as the harness does."""
    metrics = paper_metrics()
    metrics["accuracy"].prepare(dataset)
    return metrics


def _corpus(work: Path, classes: list[str]) -> dict[str, Any]:
    """FID and SFID/CSFID on channel means (known features), the means file made from two images per class."""
    wnids = imagenet_names()[0]
    for index, name in enumerate(sorted(set(classes))):
        folder = work / "train" / wnids[imagenet_class_index(name)]
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"{k}.png").write_bytes(_image((32, 24), 500 + 2 * index + k))
    means = work / "means.pt"
    compute_feature_means(work / "train", means, feature=ChannelMeans(), workers=0, progress=False)
    return {"fid": FID(feature=ChannelMeans()), "sfid": SFID(means=str(means), feature=ChannelMeans())}


def _pie_metrics() -> dict[str, Any]:
    """``metrics=pie_bench``: the default set and PIE-Bench's, with small random models."""
    clip_model, clip_processor = tiny_clip()
    return {
        **_default_metrics(),
        "structure": StructureDistance(model=tiny_dino(), layer=1),
        "pie_background": PieBackground(lpips_model=random_lpips("squeeze")),
        "pie_clip": PieCLIPSimilarity(model=clip_model, processor=clip_processor),
    }


def _entries(split: str) -> list:
    return parse_list(authors_lists.path(split).read_text(encoding="utf-8"))


def _editing_mask(work: Path) -> tuple[Any, dict, dict]:
    """Editing-Mask as a user's unzipped folder: the list beside images/<id>.png and masks/<id>.png."""
    root = work / "Editing-Mask"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / EditingMaskSplit.list_name).write_bytes(authors_lists.path("editing_mask").read_bytes())
    for index, entry in enumerate(_entries("editing_mask")):
        (root / "images" / f"{entry.id}.png").write_bytes(_image((64, 48), index))
        (root / "masks" / f"{entry.id}.png").write_bytes(_image((64, 48), index, mask=True))
    dataset = EditingMaskSplit(root=str(root), cache_dir=str(work / "cache"))
    return dataset, _paper_metrics(dataset), {}


def _imagenet(work: Path) -> tuple[Any, dict, dict]:
    """ImageNet as a user's flat validation folder holding every listed file."""
    val = work / "val"
    val.mkdir()
    entries = _entries("imagenet")
    for index, entry in enumerate(entries):
        (val / entry.meta["file"]).write_bytes(_image((80, 64), index, format="JPEG"))
    dataset = ImageNetSplit(root=str(val), list_path=str(authors_lists.path("imagenet")), cache_dir=str(work / "cache"))
    return dataset, _paper_metrics(dataset), _corpus(work, [e.meta["target_class"] for e in entries])


def _imagen(work: Path) -> tuple[Any, dict, dict]:
    """Imagen with the user's own images, one <id>.png per listed prompt."""
    folder = work / "imagen"
    folder.mkdir()
    for index, entry in enumerate(_entries("imagen")):
        (folder / f"{entry.id}.png").write_bytes(_image((64, 64), 20_000 + index))
    dataset = ImagenSplit(root=str(folder), list_path=str(authors_lists.path("imagen")), cache_dir=str(work / "cache"))
    return dataset, _paper_metrics(dataset), {"fid": FID(feature=ChannelMeans())}


def _pie_bench(work: Path) -> tuple[Any, dict, dict]:
    return PieBenchSplit(root=str(write_pie_bench(work / "pie"))), _pie_metrics(), {}


def _folder(work: Path) -> tuple[Any, dict, dict]:
    """A manifest of two photos, one with a mask, as ``tests/test_folder_split.py`` writes them."""
    from benchmarks.data.folder_split import FolderSplit

    rng = np.random.default_rng(3)
    (work / "photos").mkdir()
    (work / "masks").mkdir()
    for name in ("cat.png", "dog.png"):
        PIL.Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(work / "photos" / name)
    truth = np.zeros((40, 48), dtype=np.uint8)
    truth[10:30, 5:25] = 255
    PIL.Image.fromarray(truth).save(work / "masks" / "cat.png")
    manifest = work / "items.csv"
    manifest.write_text("image,target,source,mask\nphotos/cat.png,a raccoon,a cat,masks/cat.png\nphotos/dog.png,a wolf,a dog,\n")
    return FolderSplit(str(manifest)), _default_metrics(), {}


SPLITS: dict[str, Callable[[Path], tuple[Any, dict, dict]]] = {
    "synthetic": lambda work: (SyntheticDataset(n=2, size=64), _default_metrics(), {}),
    "toy_shapes": lambda work: (ToyShapesSplit(n=2), {**_default_metrics(), "edit_success": EditSuccess()}, {}),
    "editing_mask": _editing_mask,
    "imagenet": _imagenet,
    "imagen": _imagen,
    "pie_bench": _pie_bench,
    "folder": _folder,
}
NEEDS_LISTS = ("editing_mask", "imagenet", "imagen")


def rows(pipes: Any, split: str, work: Path) -> dict[str, Any]:
    """Two items of ``split`` (the first and the middle one) edited and measured through the runner:
    each item's row and the run's summary (corpus metrics included), numbers only, wall-clock left
    out, at 6 significant digits (nan and inf as strings)."""
    dataset, metrics, corpus = SPLITS[split](work)
    count = max(1, len(dataset.item_ids()) // 2)
    editor = InstDiffEdit(pipes.base, pipes.inpaint, num_inference_steps=10, inpaint_steps=4)
    table = ResultsTable(work / "results.jsonl")
    spec = RunSpec(
        method="instdiffedit",
        config_id="golden",
        master_seed=MASTER_SEED,
        params={"split": split},
        shard=Shard(0, count),
        batch_size=2,
        image_dir=work / "images",
    )
    summary = run(editor, dataset, table, spec, metrics=metrics, corpus_metrics=corpus)
    items = {}
    for row in table.rows():
        assert row["status"] == "ok", row.get("error")
        items[row["item_id"]] = _numbers(row)
    return {"items": items, "summary": _numbers(summary.loc[("instdiffedit", "golden")].to_dict())}


def _numbers(values: dict[str, Any]) -> dict[str, float | str]:
    kept = {k: v for k, v in values.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
    return {k: int(v) if isinstance(v, numbers.Integral) else _pinned(float(v)) for k, v in sorted(kept.items()) if not k.startswith(VOLATILE)}


def _pinned(value: float) -> float | str:
    return str(value) if math.isnan(value) or math.isinf(value) else float(f"{value:.6g}")


if __name__ == "__main__":
    import tempfile

    from benchmarks.models.tiny import tiny_pipelines

    if (why := authors_lists.missing()) is not None:
        raise SystemExit(f"error: {why}.")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as folder:
        pipes = tiny_pipelines(Path(folder) / "cache", device="cpu")
        for name in SPLITS:
            work = Path(folder) / name
            work.mkdir()
            print(f"    {name!r}: {rows(pipes, name, work)!r},", flush=True)
