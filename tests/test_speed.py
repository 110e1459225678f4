"""The speed benchmark's plumbing on the tiny model, on the CPU (no timing is asserted)."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.perf import speed


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
    assert all(r.floor_ratio == pytest.approx(1 + r.overhead) for r in rows)
    assert all(r.warmup_seconds > 0 and math.isnan(r.syncs_per_edit) for r in rows)  # syncs are counted on CUDA
    # channels_last keeps the masks and images: compared with eager's for the same seed
    assert by["instdiffedit", "eager+cl"].mask_iou_vs_eager == 1.0
    assert by["instdiffedit@2", "eager+cl"].mask_iou_vs_eager == 1.0
    assert by["sdedit", "eager+cl"].image_diff_vs_eager <= 1

    saved = json.loads((out / "speed.json").read_text())
    assert saved["meta"]["device_name"].startswith("CPU") and len(saved["rows"]) == 6
    assert saved["meta"]["default_mode"] == "eager"  # a plain run on a CPU
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
    assert speed.parse_mode("graphs+cl") == ("graphs", True)
    assert speed.parse_mode("compiled") == ("compiled", False)


def test_pipeline_methods_are_eager_in_every_mode_and_compiling_is_opt_in_per_method() -> None:
    assert speed.skip_reason("ledits_pp", "eager", set()) is None
    assert "eager in every mode" in speed.skip_reason("diffedit_ddim", "graphs", set())
    assert speed.skip_reason("diffedit", "graphs+cl", set()) is None
    assert speed.skip_reason("diffedit", "compiled", {"instdiffedit"}) == "not in --compile-methods"


def test_the_check_compares_with_eager_and_fails_on_a_mismatch(capsys) -> None:
    agree = speed.Row("instdiffedit", "graphs", mask_coverage=0.2, mask_iou_vs_eager=1.0, image_diff_vs_eager=0.0, syncs_per_edit=4)
    speed.check([speed.Row("instdiffedit", "eager"), agree])
    assert "PASS graphs / instdiffedit" in capsys.readouterr().out
    differ = speed.Row("sdedit", "compiled", image_diff_vs_eager=9.0, syncs_per_edit=2)
    with pytest.raises(SystemExit):
        speed.check([agree, differ])
    assert "FAIL compiled / sdedit" in capsys.readouterr().out


def test_the_check_passes_when_the_fast_mode_gives_eagers_results(tmp_path, capsys) -> None:
    rows = speed.main([
        "--arch", "tiny", "--quick", "--device", "cpu", "--methods", "instdiffedit,sdedit", "--modes", "eager+cl", "--check",
        "--out", str(tmp_path),
    ])
    assert [(r.mode, r.repeats) for r in rows] == [("eager", 1), ("eager", 1), ("eager+cl", 1), ("eager+cl", 1)]
    assert "check passed" in capsys.readouterr().out


@pytest.mark.slow
def test_the_warm_cache_warm_up_is_measured_in_a_second_process(tmp_path) -> None:
    rows = speed.main([
        "--arch", "tiny", "--quick", "--device", "cpu", "--methods", "instdiffedit", "--modes", "eager",
        "--warm-cache-modes", "eager", "--inductor-cache", str(tmp_path / "cache"), "--repeats", "1", "--floor-repeats", "0",
        "--out", str(tmp_path / "speed"),
    ])
    (row,) = rows
    assert row.warmup_seconds_warm_cache > 0 and math.isnan(row.floor_seconds)
    assert sorted(p.name for p in (tmp_path / "speed").iterdir()) == ["speed.csv", "speed.json", "speed.md"]
