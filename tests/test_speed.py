"""The speed benchmark's plumbing on the tiny model, on the CPU (no timing is asserted)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks.perf import speed
from benchmarks.perf.speed.cli import check
from benchmarks.perf.speed.clock import Budget, Clock
from benchmarks.perf.speed.methods import build_editor, methods_for, parse_method, skip_reason
from benchmarks.perf.speed.models import benchmark_input, build_pipelines, denoisers
from benchmarks.perf.speed.modes import parse_mode
from benchmarks.perf.speed.recording import captures, plain_processors, recording, replay
from benchmarks.perf.speed.timing import Row, measure_floors


def test_the_benchmark_writes_every_methods_row_and_the_speed_guides_table(tmp_path) -> None:
    guide = tmp_path / "speed.md"
    guide.write_text("# Title\n<!-- speed-table:begin -->\nold table\n<!-- speed-table:end -->\nafter\n")
    out = tmp_path / "speed"
    rows = speed.main(
        [
            "--arch",
            "tiny",
            "--quick",
            "--device",
            "cpu",
            "--methods",
            "instdiffedit,sdedit,instdiffedit@2",
            "--modes",
            "eager,eager+cl",
            "--repeats",
            "1",
            "--floor-repeats",
            "1",
            "--warmup",
            "0",
            "--out",
            str(out),
            "--doc",
            str(guide),
        ]
    )
    assert [(r.method, r.mode) for r in rows] == [(m, mode) for mode in ("eager", "eager+cl") for m in ("instdiffedit", "sdedit", "instdiffedit@2")]
    assert all(r.status == "ok" for r in rows), [r.error for r in rows]
    by = {(r.method, r.mode): r for r in rows}
    assert by["instdiffedit", "eager"].ratio == 1.0
    # 5 guided steps x 6 rows + 5 PNDM calls (4 steps) x 2 rows, per image also in a batch of 2
    assert by["instdiffedit", "eager"].denoiser_evals == by["instdiffedit@2", "eager"].denoiser_evals == 40
    assert by["sdedit", "eager"].denoiser_evals == 10 and math.isnan(by["sdedit", "eager"].mask_coverage)
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
    text = guide.read_text()
    assert "old table" not in text and "| instdiffedit@2 | eager+cl |" in text and text.endswith("after\n")


def test_unknown_methods_and_modes_are_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="unknown method"):
        parse_method("dalle")
    with pytest.raises(SystemExit, match="only instdiffedit"):
        parse_method("diffedit@4")
    with pytest.raises(SystemExit, match="unknown mode"):
        parse_mode("turbo")
    assert parse_mode("graphs+cl") == ("graphs", True)
    assert parse_mode("compiled") == ("compiled", False)


def test_pipeline_methods_are_eager_in_every_mode_and_compiling_is_opt_in_per_method() -> None:
    assert skip_reason("ledits_pp", "eager", set()) is None
    assert "eager in every mode" in skip_reason("diffedit_ddim", "graphs", set())
    assert skip_reason("diffedit", "graphs+cl", set()) is None
    assert skip_reason("diffedit", "compiled", {"instdiffedit"}) == "not in --compile-methods"


def test_the_check_compares_with_eager_and_fails_on_a_mismatch(capsys) -> None:
    agree = Row("instdiffedit", "graphs", mask_coverage=0.2, mask_iou_vs_eager=1.0, image_diff_vs_eager=0.0, syncs_per_edit=4)
    check([Row("instdiffedit", "eager"), agree])
    assert "PASS graphs / instdiffedit" in capsys.readouterr().out
    differ = Row("sdedit", "compiled", image_diff_vs_eager=9.0, syncs_per_edit=2)
    with pytest.raises(SystemExit):
        check([agree, differ])
    assert "FAIL compiled / sdedit" in capsys.readouterr().out


def test_the_check_passes_when_the_fast_mode_gives_eagers_results(tmp_path, capsys) -> None:
    rows = speed.main(
        [
            "--arch",
            "tiny",
            "--quick",
            "--device",
            "cpu",
            "--methods",
            "instdiffedit,sdedit",
            "--modes",
            "eager+cl",
            "--check",
            "--out",
            str(tmp_path),
        ]
    )
    assert [(r.mode, r.repeats) for r in rows] == [("eager", 1), ("eager", 1), ("eager+cl", 1), ("eager+cl", 1)]
    assert "check passed" in capsys.readouterr().out


@pytest.mark.slow
def test_the_warm_cache_warm_up_is_measured_in_a_second_process(tmp_path) -> None:
    rows = speed.main(
        [
            "--arch",
            "tiny",
            "--quick",
            "--device",
            "cpu",
            "--methods",
            "instdiffedit",
            "--modes",
            "eager",
            "--warm-cache-modes",
            "eager",
            "--inductor-cache",
            str(tmp_path / "cache"),
            "--repeats",
            "1",
            "--floor-repeats",
            "0",
            "--out",
            str(tmp_path / "speed"),
        ]
    )
    (row,) = rows
    assert row.warmup_seconds_warm_cache > 0 and math.isnan(row.floor_seconds)
    assert sorted(p.name for p in (tmp_path / "speed").iterdir()) == ["speed.csv", "speed.json", "speed.md"]


# -- the other families ---------------------------------------------------------------------

FAMILY_ARCHS = {"tiny_sdxl": "sdxl", "tiny_sd3": "sd3", "tiny_flux": "flux"}
SD_ONLY = {"diffedit_ddim", "ledits_pp"}  # they run inside SD 1.x/2.x diffusers pipelines


def test_each_family_runs_every_method_of_the_list_that_runs_on_it() -> None:
    for family in FAMILY_ARCHS.values():
        methods = methods_for(family)
        assert methods[:2] == ["instdiffedit", "no_mask"] and {"diffedit", "sdedit", "oracle_inpaint"} <= set(methods)
        assert not SD_ONLY & set(methods)
    assert SD_ONLY <= set(methods_for("sd"))


def test_a_method_that_does_not_run_on_the_family_is_refused_before_any_model_is_built(tmp_path) -> None:
    with pytest.raises(SystemExit, match="ledits_pp do not run on the flux family"):
        speed.main(["--arch", "tiny_flux", "--device", "cpu", "--methods", "instdiffedit,ledits_pp", "--out", str(tmp_path)])
    assert not (tmp_path / "speed.json").exists()


@pytest.mark.parametrize("arch", [pytest.param("tiny_sdxl", marks=pytest.mark.slow), pytest.param("tiny_sd3", marks=pytest.mark.slow), "tiny_flux"])
def test_a_family_run_times_its_methods_and_fills_the_speed_guides_backbone_table(tmp_path, arch) -> None:
    guide = tmp_path / "speed.md"
    guide.write_text("<!-- speed-table:begin -->\nSD table\n<!-- speed-table:end -->\n<!-- speed-backbones:begin -->\nold\n<!-- speed-backbones:end -->\n")
    out = tmp_path / "speed" / arch
    rows = speed.main(
        [
            "--arch",
            arch,
            "--quick",
            "--device",
            "cpu",
            "--modes",
            "eager",
            "--short-warmup",
            "--repeats",
            "1",
            "--floor-repeats",
            "1",
            "--out",
            str(out),
            "--doc",
            str(guide),
        ]
    )
    by = {r.method: r for r in rows}
    assert list(by) == methods_for(FAMILY_ARCHS[arch]) and all(r.status == "ok" for r in rows), [r.error for r in rows]
    # --quick: 5 steps of InstDiffEdit's mask loop (3 noises; x 2 with classifier-free guidance, FLUX.1 [dev] has
    # none) and 4 inpainting steps (the twin's or blending with the base model, same rows)
    rows_per_latent = 1 if arch == "tiny_flux" else 2
    assert by["instdiffedit"].denoiser_evals == 5 * 3 * rows_per_latent + 4 * rows_per_latent
    assert by["oracle_inpaint"].denoiser_evals == 4 * rows_per_latent and by["oracle_inpaint"].mask_coverage > 0  # the item's exact mask
    for r in rows:
        assert r.floor_seconds > 0 and r.backbone_floor_seconds > 0
        assert r.backbone_overhead == pytest.approx(r.seconds / r.backbone_floor_seconds - 1)
    # nothing is captured outside InstDiffEdit's mask loop: the backbone floor is the floor itself
    assert by["sdedit"].backbone_floor_seconds == by["sdedit"].floor_seconds
    text = guide.read_text()
    assert "SD table" in text and "old" not in text and f"| `{arch}` | instdiffedit |" in text
    assert json.loads((out / "speed.json").read_text())["meta"]["resolution"] == 64
    # the same table from the runs' folders alone (runs made on another machine)
    guide.write_text(text.replace(f"| `{arch}` |", "| gone |"))
    assert speed.main(["--backbone-table", str(out.parent), "--doc", str(guide)]) == []
    assert guide.read_text() == text


@pytest.fixture(scope="module")
def tiny_flux_pipes():
    return build_pipelines("tiny_flux", torch.device("cpu"), torch.float32, None, None)


def _edit_calls(pipes, method: str, warmup: bool) -> list:
    item = benchmark_input(pipes)
    editor = build_editor(method, pipes, quick=True, warmup=warmup)
    mask = item.gt_mask if editor.capabilities.needs_ground_truth_mask else None
    with recording(*denoisers(pipes)) as calls:
        editor.edit(item.image, target=item.target, source=item.source, mask=mask, generator=torch.Generator().manual_seed(0))
    return calls


@pytest.mark.parametrize("method", ["instdiffedit", "diffedit", "sdedit", "oracle_inpaint"])
def test_the_short_warm_up_makes_every_call_shape_of_a_full_edit_in_fewer_calls(tiny_flux_pipes, method) -> None:
    full, short = _edit_calls(tiny_flux_pipes, method, False), _edit_calls(tiny_flux_pipes, method, True)
    assert {call.key() for call in short} == {call.key() for call in full}
    assert len(short) < len(full)


def test_the_backbone_floor_replays_the_edits_calls_with_the_models_own_attention(tiny_flux_pipes) -> None:
    unets = denoisers(tiny_flux_pipes)
    plain = plain_processors(unets)
    calls = _edit_calls(tiny_flux_pipes, "instdiffedit", False)
    assert captures(calls, plain) and not captures(_edit_calls(tiny_flux_pipes, "sdedit", False), plain)
    seen = []
    runners = list(plain)
    handles = [runner.listen(lambda *_, runner=runner: seen.append(runner.processors() == plain[runner])) for runner in runners]
    try:
        replay(calls, unets, Clock(torch.device("cpu")), plain)
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == len(calls) + len({call.key(plain) for call in calls}) and all(seen)
    assert plain_processors(unets) == plain  # put back


def test_a_floor_that_would_overrun_the_budget_is_left_out_with_a_note() -> None:
    row = Row("diffedit", "graphs", seconds=90.0)
    measure_floors(row, [], [], {}, Clock(torch.device("cpu")), 1, Budget(60))
    assert math.isnan(row.floor_seconds) and "would overrun the time budget" in row.note


def test_a_model_of_conf_model_is_timed_as_run_py_builds_it(tmp_path) -> None:
    rows = speed.main(
        [
            "--model",
            "tiny",
            "--quick",
            "--device",
            "cpu",
            "--methods",
            "sdedit",
            "--modes",
            "eager",
            "--repeats",
            "1",
            "--floor-repeats",
            "0",
            "--warmup",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert [(r.method, r.status, r.denoiser_evals) for r in rows] == [("sdedit", "ok", 10)]  # as on --arch tiny
    assert json.loads((tmp_path / "speed.json").read_text())["meta"]["weights"] == "model=tiny"


def test_an_unknown_model_is_refused_with_the_choices(tmp_path) -> None:
    with pytest.raises(SystemExit, match="unknown --model 'sd99'; choose from .*tiny_flux"):
        speed.main(["--model", "sd99", "--device", "cpu", "--out", str(tmp_path)])


def test_the_backbone_table_shows_a_method_timed_only_eagerly_by_its_eager_row(tmp_path) -> None:
    from benchmarks.perf.speed.tables import backbone_markdown

    timed = {"status": "ok", "error": "", "seconds": 10.8, "seconds_mask": 0.0, "seconds_inpaint": 0.0, "denoiser_evals": 28}
    timed |= {"floor_seconds": 10.6, "backbone_floor_seconds": 10.6, "backbone_overhead": 0.02, "peak_memory_gb": 35.0}
    rows = [
        {"method": "kontext", "mode": "eager", **timed},
        {"method": "instdiffedit", "mode": "eager", **timed},  # also timed in the default mode: that row stands
        {"method": "instdiffedit", "mode": "graphs", **timed, "seconds": 5.0},
    ]
    meta = {"default_mode": "graphs", "device_name": "GPU", "dtype": "bfloat16", "resolution": 1024, "date": "today", "command": "cmd"}
    (tmp_path / "kontext_dev").mkdir()
    (tmp_path / "kontext_dev" / "speed.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    table = backbone_markdown(tmp_path)
    assert "| `kontext_dev` | kontext (eager) | 10.80 |" in table
    assert "| `kontext_dev` | instdiffedit | 5.00 |" in table and "instdiffedit (eager)" not in table
