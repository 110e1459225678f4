"""The speed benchmark's plumbing on the tiny model, on the CPU (no timing is asserted)."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import speed


def test_the_benchmark_writes_every_methods_row_and_the_readme_table(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n{speed.BEGIN}\nold table\n{speed.END}\nafter\n")
    out = tmp_path / "speed"
    rows = speed.main([
        "--arch", "tiny", "--quick", "--device", "cpu", "--methods", "instdiffedit,sdedit,instdiffedit@2",
        "--modes", "eager,eager+cl", "--repeats", "1", "--floor-repeats", "1", "--warmup", "0",
        "--out", str(out), "--readme", str(readme),
    ])
    assert [(r.method, r.mode) for r in rows] == [
        (m, mode) for mode in ("eager", "eager+cl") for m in ("instdiffedit", "sdedit", "instdiffedit@2")
    ]
    assert all(r.status == "ok" for r in rows), [r.error for r in rows]
    by = {(r.method, r.mode): r for r in rows}
    assert by["instdiffedit", "eager"].ratio == 1.0
    # 5 guided steps x 6 rows + 5 PNDM calls (4 steps) x 2 rows, per image also in a batch of 2
    assert by["instdiffedit", "eager"].unet_evals == by["instdiffedit@2", "eager"].unet_evals == 40
    assert by["sdedit", "eager"].unet_evals == 10 and math.isnan(by["sdedit", "eager"].mask_coverage)
    assert all(r.floor_seconds > 0 for r in rows)
    # channels_last keeps the masks: IoU with the eager mask of the same seed
    assert by["instdiffedit", "eager+cl"].mask_iou_vs_eager == 1.0
    assert by["instdiffedit@2", "eager+cl"].mask_iou_vs_eager == 1.0

    saved = json.loads((out / "speed.json").read_text())
    assert saved["meta"]["device_name"].startswith("CPU") and len(saved["rows"]) == 6
    assert (out / "speed.csv").read_text().startswith("method,mode,batch")
    text = readme.read_text()
    assert "old table" not in text and "| instdiffedit@2 | eager+cl |" in text and text.endswith("after\n")


def test_unknown_methods_and_modes_are_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="unknown method"):
        speed.parse_method("dalle")
    with pytest.raises(SystemExit, match="only instdiffedit"):
        speed.parse_method("diffedit@4")
    with pytest.raises(SystemExit, match="unknown mode"):
        speed.parse_mode("turbo")
    assert speed.parse_mode("cudagraphs+cl") == ("reduce-overhead", True)
