"""FLUX.1 Kontext [dev] and Qwen-Image-Edit as methods: the instruction each item is edited by, the
tiny models of both architectures, and both through run.py and the speed benchmark."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import PIL.Image
import pytest
import torch
from pie_layout import write_pie_bench

from baselines.instruction_editors import FluxKontext, QwenImageEdit, edit_instruction
from benchmarks.data.items import EditItem
from benchmarks.data.pie_bench import PieBenchSplit
from benchmarks.models.qwen_processor import QWEN_IMAGE_EDIT_SYSTEM_PROMPT
from benchmarks.models.tiny_families import build_tiny_qwen_image_edit
from benchmarks.run.runner import edit_items
from instdiffedit.backbones import PIPELINE_FAMILIES, family_of
from instdiffedit.types import Capabilities, EditResult

ROOT = Path(__file__).resolve().parents[1]


def test_an_instruction_replaces_the_source_with_the_target() -> None:
    assert edit_instruction("a red square", "a blue circle") == "Replace a blue circle with a red square"
    assert edit_instruction(" a tench. ", "goldfish") == "Replace goldfish with a tench"


def test_without_a_source_the_instruction_names_what_the_image_should_show() -> None:
    assert edit_instruction("a cat wearing a hat", None) == "Make the image show a cat wearing a hat"
    assert edit_instruction("a cat wearing a hat", " ") == "Make the image show a cat wearing a hat"


def test_pie_bench_items_keep_their_own_editing_instruction(tmp_path: Path) -> None:
    split = PieBenchSplit(root=str(write_pie_bench(tmp_path)))
    assert split.load("111000000000").instruction == "Change the cat to a dog"
    assert split.load("911000000000").instruction == "Make it a watercolor painting"


class _Recording:
    """An editor that records the keyword arguments of its edits."""

    capabilities: ClassVar[Capabilities]

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def edit(self, image: PIL.Image.Image, **texts: object) -> EditResult:
        self.calls.append(texts)
        return EditResult(image)


class _InstructionRecording(_Recording):
    capabilities = Capabilities(families=frozenset({"flux_kontext"}), instructions=True)


class _MaskRecording(_Recording):
    capabilities = Capabilities(families=frozenset({"sd"}))


def test_the_runner_gives_the_items_instruction_only_to_editors_that_take_instructions() -> None:
    item = EditItem("a", PIL.Image.new("RGB", (8, 8)), "a dog", "a cat", instruction="Change the cat to a dog")
    plain = EditItem("b", PIL.Image.new("RGB", (8, 8)), "a dog", "a cat")
    instruction_editor, mask_editor = _InstructionRecording(), _MaskRecording()
    edit_items(instruction_editor, [item], [0])
    edit_items(instruction_editor, [plain], [0])
    edit_items(mask_editor, [item], [0])
    assert [call["instruction"] for call in instruction_editor.calls] == ["Change the cat to a dog", None]
    assert "instruction" not in mask_editor.calls[0]


def test_the_instruction_editors_are_the_only_methods_of_their_families() -> None:
    assert FluxKontext.capabilities.families == {"flux_kontext"} and QwenImageEdit.capabilities.families == {"qwen_image_edit"}
    assert set(PIPELINE_FAMILIES.values()) == {"flux_kontext", "qwen_image_edit"}
    assert FluxKontext.capabilities.instructions and QwenImageEdit.capabilities.instructions


def test_the_tiny_qwen_tokenizer_splits_the_system_prompt_into_the_tokens_the_pipeline_drops() -> None:
    pipe, twin = build_tiny_qwen_image_edit()
    template = pipe.prompt_template_encode
    prefix = template[: template.index("<|vision_start|>")]
    assert prefix == QWEN_IMAGE_EDIT_SYSTEM_PROMPT, "the tokenizer was trained on another prompt than the pipeline's"
    assert len(pipe.tokenizer(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 64
    assert family_of(pipe) == "qwen_image_edit" and twin is None
    config = pipe.text_encoder.config
    assert pipe.tokenizer.convert_ids_to_tokens([config.image_token_id, config.vision_start_token_id]) == ["<|image_pad|>", "<|vision_start|>"]


# Denoiser evaluations: FLUX.1 Kontext [dev] one per step (guidance-distilled), Qwen-Image-Edit two (true CFG).
TINY_RUNS = {
    "tiny_kontext": ("kontext", ("method.num_inference_steps=3",), 3),
    "tiny_qwen_image_edit": ("qwen_image_edit", ("method.num_inference_steps=2",), 2 * 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(TINY_RUNS))
def test_each_instruction_editor_runs_on_its_tiny_model_through_run_py(tmp_path: Path, model: str) -> None:
    method, overrides, evals = TINY_RUNS[model]
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            f"model={model}",
            f"method={method}",
            *overrides,
            "dataset=synthetic",
            "dataset.n=1",
            "logger=none",
            f"paths.output_root={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in next(tmp_path.glob(f"{model}/synthetic/{method}/*/results.jsonl")).read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok"]
    assert rows[0]["denoiser_evals"] == evals
    assert math.isnan(rows[0]["mask_iou"]) and not math.isnan(rows[0]["changing_rate"]), "no mask to score; the image is scored"


@pytest.mark.slow
def test_the_speed_benchmark_times_an_instruction_editor_on_its_tiny_model(tmp_path: Path) -> None:
    from benchmarks.perf import speed

    rows = speed.main(
        [
            "--arch",
            "tiny_kontext",
            "--methods",
            "kontext",
            "--quick",
            "--modes",
            "eager",
            "--warm-cache-modes",
            "",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--floor-repeats",
            "0",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    assert [(row.method, row.status) for row in rows] == [("kontext", "ok")]
    assert rows[0].denoiser_evals == 4 and rows[0].seconds > 0  # --quick: 4 steps, one call each


def test_an_edit_comes_back_at_the_input_size_without_a_mask(tiny_kontext_editor: FluxKontext) -> None:
    image = PIL.Image.new("RGB", (48, 40), (200, 40, 40))
    result = tiny_kontext_editor.edit(image, target="a blue circle", source="a red square", generator=torch.Generator().manual_seed(0))
    assert result.image.size == (48, 40) and result.mask is None and result.mask_history is None
    assert result.denoiser_evals == 1 and result.timings["total"] >= result.timings["edit"] > 0


@pytest.fixture(scope="module")
def tiny_kontext_editor() -> FluxKontext:
    from benchmarks.models.tiny_families import build_tiny_kontext

    pipe, _ = build_tiny_kontext()
    pipe.default_sample_size = 32  # 64 px: the tiny VAE downsamples by 2
    return FluxKontext(pipe, num_inference_steps=1, max_sequence_length=32)
