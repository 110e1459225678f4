"""The scaling measurement: steady-state rates from completion times, and the script end to end on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import run  # noqa: F401  (registers the resolvers)
from benchmarks.perf.scaling import combine, main, shard_rate

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_a_shards_rate_leaves_out_its_warm_up_items() -> None:
    # The first item finishes 30 s in (model loading, warm-up); then one item every 2 s.
    rate = shard_rate([30.0, 32.0, 34.0, 36.0, 38.0], index=0, warmup=1)
    assert (rate.items, rate.start, rate.end, rate.rate) == (4, 30.0, 38.0, 0.5)
    assert shard_rate([36.0, 30.0, 38.0, 32.0, 34.0], index=0, warmup=2).rate == 0.5  # order of rows does not matter
    with pytest.raises(ValueError, match="Shard 3 finished 2 items.*raise --n"):
        shard_rate([1.0, 2.0], index=3, warmup=2)


def test_shards_side_by_side_add_their_rates_and_report_their_overlap() -> None:
    a, b = shard_rate([0.0, 10.0], 0, 1), shard_rate([5.0, 7.0, 9.0, 11.0, 13.0, 15.0], 1, 1)
    total, overlap = combine([a, b])
    assert total == pytest.approx(0.1 + 0.5) and overlap == pytest.approx(5 / 10)


@pytest.mark.slow
def test_the_script_measures_one_and_two_shards_and_writes_its_figure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "figures" / "scaling"
    guide = tmp_path / "scaling.md"
    guide.write_text("Scaling:\n<!-- scaling:begin -->\nold\n<!-- scaling:end -->\nafter\n")
    args = [
        "--doc",
        str(guide),
        "--model",
        "tiny",
        "--dataset",
        "synthetic",
        "--method",
        "sdedit",
        "--n",
        "4",
        "--warmup",
        "1",
        "--launcher",
        "submitit_local",
        "--override",
        "dataset.size=64",
        "--out",
        str(out),
        "--work",
        str(tmp_path / "runs"),
    ]
    assert main(args) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["device"].startswith("CPU") and result["launcher"] == "submitit_local"
    assert [m["gpus"] for m in result["measurements"]] == [1, 2]
    assert [len(m["shards"]) for m in result["measurements"]] == [1, 2]
    assert [s["items"] for s in result["measurements"][1]["shards"]] == [1, 1]  # 2 items per shard, 1 for warm-up
    assert result["speedup"]["1"] == 1.0 and result["speedup"]["2"] > 0
    assert result["rows_identical_to_one_shard"] == {"2": True}  # sharding changed no result
    paragraph = guide.read_text()
    assert "old" not in paragraph and paragraph.endswith("<!-- scaling:end -->\nafter\n")
    assert f"{result['measurements'][1]['items_per_second']:.2f} items/s on 2 GPU(s)" in paragraph
    assert out.with_suffix(".png").stat().st_size > 10_000
    out.with_suffix(".png").unlink()  # a machine without matplotlib leaves the figure to be drawn elsewhere:
    assert main(["--plot-only", str(out.with_suffix(".json"))]) == 0 and out.with_suffix(".png").exists()
    assert os.path.isdir(tmp_path / "runs" / "2-gpu" / "tiny" / "synthetic" / "sdedit")


def test_the_sd14_random_model_is_sd14s_architecture() -> None:
    # Built on the meta device: shapes without memory, so the test costs seconds, not gigabytes.
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=sd14_random", "device=meta"])
    pipes = instantiate(cfg.model)
    parameters = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in [("unet", pipes.base.unet), ("inpaint", pipes.inpaint.unet), ("text", pipes.base.text_encoder)]
    }
    assert parameters == {"unet": 859_520_964, "inpaint": 859_535_364, "text": 123_060_480}  # SD 1.4's, SD-inpainting's, CLIP ViT-L/14's
    assert pipes.base.unet.dtype == torch.float32  # dtype=auto: float32 off CUDA
