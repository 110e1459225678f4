"""The toy DiT (models/toy-dit) as run.py's model=toy_dit, and its card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.metrics.references import reference_rows
from benchmarks.models.families import load_family
from benchmarks.models.loading import ModelUnavailableError
from benchmarks.toy.model import TOY_MODEL, toy_dit_pipelines
from benchmarks.toy.split import ToyShapesSplit
from benchmarks.toy.training.card import DENOISERS, dit_card, evaluation_table
from instdiffedit import InstDiffEdit
from instdiffedit.backbones import StableDiffusion3

ROOT = Path(__file__).resolve().parents[1]
DIT = TOY_MODEL.parent / "toy-dit"


def test_the_toy_dit_loads_as_sd3_without_t5_at_its_own_64_px() -> None:
    pipes = toy_dit_pipelines(device="cpu")
    assert (pipes.family, pipes.resolution, pipes.inpaint) == ("sd3", 64, None)
    assert pipes.base.text_encoder_3 is None and pipes.base.tokenizer_3 is None
    editor = InstDiffEdit(pipes.base, None)
    assert isinstance(editor.backbone, StableDiffusion3) and editor.backbone.native_resolution() == 64
    layout = editor.backbone.token_layout("a blue star")  # the words from CLIP's columns, CLIP's start token the reference
    assert layout.words == ("a", "blue", "star") and layout.spans == ((1,), (2,), (3,)) and layout.reference == (0,)
    text, _ = editor.backbone.text("a blue star")
    assert text.shape[1] == 77 + 256 and not text[:, 77:].any()  # T5's 256 columns: zeros, as in training


def test_a_missing_dit_folder_is_one_sentence_naming_it_and_the_training_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"The toy model is not at .*toy-dit .*python -m benchmarks.toy.training.train --out"):
        toy_dit_pipelines(tmp_path / "toy", device="cpu")


def test_the_toy_dit_refuses_another_family_and_only_sd3_loads_without_t5() -> None:
    with pytest.raises(ValueError, match="the toy DiT is an SD 3.x model; set model.family=sd3"):
        toy_dit_pipelines(family="sdxl", device="cpu")
    with pytest.raises(ValueError, match="model.t5=false leaves out SD 3.x's T5 encoder, but the flux family"):
        load_family("flux", str(DIT), t5=False, device="cpu")


@pytest.mark.slow
def test_model_toy_dit_runs_instdiffedit_on_a_toy_item_offline_with_latent_blending(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "run.py", "model=toy_dit", "dataset.n=1", "logger=none", f"paths.output_root={tmp_path}"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reference: disc" in result.stdout and "reference: full" in result.stdout
    run_dir = tmp_path / "toy_dit" / "toy_shapes" / "instdiffedit" / "dataset.n=1"
    [row] = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert row["status"] == "ok" and row["param.model"] == "toy_dit"
    assert 0 <= row["mask_iou"] <= 100 and row["edit_success"] in (0.0, 1.0)
    # 25 guided steps x 3 noises x CFG, then 50 blended inpainting steps x CFG: no twin call
    assert row["denoiser_evals"] == 25 * 3 * 2 + 50 * 2


def _write_run(folder: Path, model: str, ious: list[float], seed: int | None = None) -> Path:
    """A run folder as run.py writes it (the columns the card reads), for items toy-00000, toy-00001, ...
    of the split of ``dataset.seed`` (None: a run that does not record it)."""
    folder.mkdir(parents=True)
    rows = [
        {
            "item_id": f"toy-{i:05d}",
            "method": "instdiffedit",
            "config_id": f"c{seed or 0}",  # the split's seed is one of the configuration's settings
            "status": "ok",
            "flags": "",
            "param.model": model,
            "mask_iou": iou,
            "edit_success": 1.0,
            "changing_rate": 2.0,
            "bg_psnr": 20.0,
            "seconds": 1.5,
            "denoiser_evals": 250,
            **({} if seed is None else {"param.dataset.seed": seed}),
        }
        for i, iou in enumerate(ious)
    ]
    (folder / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_the_dit_card_reports_instdiffedit_s_mask_iou_against_the_trivial_masks_on_its_items(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "toy_dit" / "instdiffedit", "toy_dit", [30.0, 10.0, 20.0])
    table = evaluation_table([run], DENOISERS["dit"], measured_on="NVIDIA H200")
    trivial = reference_rows(ToyShapesSplit(n=3), ["toy-00000", "toy-00001", "toy-00002"])
    assert list(table.index) == ["instdiffedit", "reference: disc (3 items)", "reference: full (3 items)"]
    assert table.loc["instdiffedit", "mask IoU (%)"] == pytest.approx(20.0)
    for name in ("disc", "full"):
        assert table.loc[f"reference: {name} (3 items)", "mask IoU (%)"] == pytest.approx(trivial.loc[(f"reference: {name}", "-"), "mask_iou"])
    assert {"transformer evaluations", "seconds / item (NVIDIA H200)"} <= set(table.columns)

    report = json.loads((TOY_MODEL / "training.json").read_text())
    configs = [json.loads((DIT / part).read_text()) for part in ("transformer/config.json", "scheduler/scheduler_config.json")]
    attention = pd.DataFrame({"on the object": [0.1], "off the object": [0.2]}, index=["start token"])
    attention.attrs["scenes"] = 1
    text = dit_card(report, table, *configs, attention)
    assert table.to_markdown(floatfmt=".3f") in text and "16 x 16 token grid" in text


def test_the_dit_card_refuses_the_unet_s_runs(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "toy" / "instdiffedit", "toy", [30.0])
    with pytest.raises(SystemExit, match="the runs given are of model=toy, but this card is model=toy_dit's"):
        evaluation_table([run], DENOISERS["dit"])


def test_runs_on_another_dataset_seed_get_rows_of_their_own_against_their_own_split_s_references(tmp_path: Path) -> None:
    default = _write_run(tmp_path / "toy" / "default", "toy", [30.0, 10.0], seed=0)
    other = _write_run(tmp_path / "toy" / "seed7", "toy", [40.0, 20.0], seed=7)
    table = evaluation_table([default, other], DENOISERS["unet"])
    assert list(table.index) == [
        "instdiffedit",
        "reference: disc (2 items)",
        "reference: full (2 items)",
        "instdiffedit (dataset.seed=7)",
        "reference: disc (2 items, dataset.seed=7)",
        "reference: full (2 items, dataset.seed=7)",
    ]
    assert table.loc["instdiffedit (dataset.seed=7)", "mask IoU (%)"] == pytest.approx(30.0)
    trivial = reference_rows(ToyShapesSplit(n=2, seed=7), ["toy-00000", "toy-00001"])
    assert table.loc["reference: full (2 items, dataset.seed=7)", "mask IoU (%)"] == pytest.approx(trivial.loc[("reference: full", "-"), "mask_iou"])
    assert table.loc["reference: full (2 items, dataset.seed=7)", "mask IoU (%)"] != table.loc["reference: full (2 items)", "mask IoU (%)"]
