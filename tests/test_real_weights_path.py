"""The real-weights path end to end: the paper's runs, offline, from a filled hub-layout cache.

Every loader runs as it does for a user who has downloaded everything (see ``hub_cache``):
Stable Diffusion and SD-inpainting by hub id from the Hugging Face cache, CLIP and DeiT from it
too, AlexNet and the FID Inception from the torch hub cache, the verified split lists and the
extracted Editing-Mask archive from the harness's cache; ``HF_HUB_OFFLINE=1``. Each split runs
on one shard of a few items (``shard.count``) with fewer denoising steps: the same code, faster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import authors_lists
import pandas as pd
import pytest
from hub_cache import FilledCache, build_filled_cache, imagenet_folders

from benchmarks.data.splits import parse_list
from benchmarks.run.folder import Shard

ROOT = Path(__file__).resolve().parents[1]
# Two items per split: the first and the middle one of the list.
SHARDS = {"editing_mask": 100, "imagenet": 546, "imagen": 180}
FAST = ("method.num_inference_steps=10", "method.inpaint_steps=4", "batch_size=2", "logger=none")

pytestmark = [pytest.mark.slow, authors_lists.needs_lists]


def _items(split: str) -> list:
    entries = parse_list(authors_lists.path(split).read_text(encoding="utf-8"))
    chosen = set(Shard(0, SHARDS[split]).select([e.id for e in entries]))
    return [e for e in entries if e.id in chosen]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("real-weights")
    cache = build_filled_cache(root / "cache", authors_lists.FOLDER)
    imagenet = parse_list(authors_lists.path("imagenet").read_text(encoding="utf-8"))
    val, train = imagenet_folders(root / "imagenet", imagenet, [e.meta["target_class"] for e in _items("imagenet")])
    means = root / "means.pt"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.metrics.feature_means",
            "--train-root",
            str(train),
            "--out",
            str(means),
            "--workers",
            "0",
            "--device",
            "cpu",
            "--batch-size",
            "8",
        ],
        cwd=ROOT,
        env={**os.environ, **cache.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return {"cache": cache, "val": val, "means": means, "out": root / "outputs"}


def _run(world: dict, *overrides: str) -> subprocess.CompletedProcess:
    cache: FilledCache = world["cache"]
    return subprocess.run(
        [sys.executable, "run.py", "metrics=paper", *FAST, f"paths.output_root={world['out']}", *overrides],
        cwd=ROOT,
        env={**os.environ, **cache.env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in next(run_dir.glob("results*.jsonl")).read_text().splitlines()]


def _summary(run_dir: Path) -> pd.Series:
    return pd.read_csv(next(run_dir.glob("summary*.csv"))).iloc[0]


def test_editing_mask_with_every_paper_metric(world: dict) -> None:
    count = SHARDS["editing_mask"]
    result = _run(world, "model=sd14", "dataset=editing_mask", f"shard.count={count}", "shard.index=0", f"metrics.corpus.sfid.means={world['means']}")
    assert result.returncode == 0, result.stderr[-4000:]
    (run_dir,) = (world["out"] / "sd14" / "editing_mask" / "instdiffedit").iterdir()
    rows = _rows(run_dir)
    assert sorted(r["item_id"] for r in rows) == sorted(e.id for e in _items("editing_mask"))
    for row in rows:
        assert row["status"] == "ok", row.get("error")
        assert all(pd.notna(row[c]) for c in ("mask_iou", "changing_rate", "bg_lpips", "lpips", "clip_score"))
    by_kind = {r["meta.kind"]: r for r in rows}
    assert pd.notna(by_kind["imagenet"]["accuracy"]) and pd.isna(by_kind["imagen"]["accuracy"])
    summary = _summary(run_dir)
    assert pd.notna(summary["fid"]) and pd.notna(summary["sfid"])


def test_imagenet_from_the_users_validation_folder_with_the_split_default_models(world: dict) -> None:
    result = _run(
        world,
        "dataset=imagenet",
        f"dataset.root={world['val']}",
        f"shard.count={SHARDS['imagenet']}",
        "shard.index=0",
        f"metrics.corpus.sfid.means={world['means']}",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (run_dir,) = (world["out"] / "sd14" / "imagenet" / "instdiffedit").iterdir()  # model=sd14: the split's default
    rows = _rows(run_dir)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert all(r["accuracy"] in (0.0, 100.0) and pd.notna(r["lpips"]) for r in rows)
    summary = _summary(run_dir)
    assert all(pd.notna(summary[c]) for c in ("sfid", "csfid", "fid"))


def test_imagen_generates_its_inputs_with_the_base_model(world: dict) -> None:
    result = _run(
        world, "dataset=imagen", "dataset.resolution=64", "dataset.steps=10", f"shard.count={SHARDS['imagen']}", "shard.index=0", "~metrics.corpus.sfid"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (run_dir,) = (world["out"] / "sd14" / "imagen" / "instdiffedit").iterdir()
    rows = _rows(run_dir)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert all("generated by CompVis/stable-diffusion-v1-4" in r["meta.image_source"] for r in rows)
    assert all(pd.notna(r["clip_score"]) and pd.isna(r["accuracy"]) for r in rows)
    assert pd.notna(_summary(run_dir)["fid"])
