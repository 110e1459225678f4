"""The toy text encoder without contextual mixing: the caption reaches a denoiser through its word tokens only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusion3Pipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
from test_toy_train import QUICK, TINY  # the tiny training settings of the training tests

from benchmarks.models.families import WITHOUT_T5
from benchmarks.models.tiny import clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer
from benchmarks.toy.training.denoisers import joint_text_parameters
from benchmarks.toy.training.nets import build_text_encoder
from benchmarks.toy.training.train import caption_token_mask, text_encoder_trainer, train

CAPTIONS = ["a red circle on a gray background", "a blue square and a green star on a white background"]


def _states(mixing: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    encoder = build_text_encoder(32, 2, 16, mixing=mixing).eval()
    ids = CaptionTokenizer(clip_tokenizer())(CAPTIONS)
    with torch.no_grad():
        output = encoder(ids, output_hidden_states=True)
    return ids, output.last_hidden_state, output.hidden_states[-2]


def test_without_mixing_the_padding_states_are_the_same_for_every_caption() -> None:
    _, last, penultimate = _states(mixing=False)
    assert torch.equal(last[0, 30:], last[1, 30:]) and torch.equal(penultimate[0, 30:], penultimate[1, 30:])


def test_with_mixing_the_padding_states_carry_the_caption() -> None:
    _, last, _ = _states(mixing=True)
    assert not torch.allclose(last[0, 30:], last[1, 30:], atol=1e-3)


def test_without_mixing_a_word_s_state_depends_on_its_token_and_position_alone() -> None:
    torch.manual_seed(0)
    encoder = build_text_encoder(32, 2, 16, mixing=False).eval()
    tokens = CaptionTokenizer(clip_tokenizer())
    with torch.no_grad():
        red, blue = (encoder(tokens([caption])).last_hidden_state for caption in ("a red circle", "a blue circle"))
    assert torch.equal(red[0, 3], blue[0, 3]) and not torch.equal(red[0, 2], blue[0, 2])  # "circle" at 3, the colour at 2


def test_the_attention_output_projections_stay_zero_through_contrastive_and_joint_training() -> None:
    config = replace(TINY, text_mixing=False, text_pooling="tokens")
    trainer = text_encoder_trainer(config, torch.device("cpu"))
    scenes = torch.rand(4, 3, 64, 64)
    ids = CaptionTokenizer(clip_tokenizer())(CAPTIONS * 2)
    for _ in range(2):
        trainer.step({"images": scenes, "ids": ids})
    encoder = trainer.finish()
    params = joint_text_parameters(encoder)
    assert all(p.requires_grad for p in params)
    for layer in encoder.text_model.encoder.layers:
        projection = layer.self_attn.out_proj
        assert not projection.weight.any() and not projection.bias.any() and not projection.weight.requires_grad
        assert all(p is not projection.weight and p is not projection.bias for p in params)


def test_the_token_pooling_covers_the_caption_between_its_start_and_end_tokens() -> None:
    ids = torch.tensor([[49406, 5, 6, 49407, 49407], [49406, 49407, 49407, 49407, 49407]])
    assert torch.equal(caption_token_mask(ids, 49407), torch.tensor([[0.0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]))


def test_joint_training_of_an_encoder_with_mixing_is_refused() -> None:
    with pytest.raises(ValueError, match="no-text-mixing"):
        replace(TINY, text_mixing=True, text_pooling="end", text_joint=True)


@pytest.mark.slow
def test_a_short_run_without_mixing_trained_jointly_loads_in_the_three_plain_pipelines(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    train(out, replace(TINY, text_mixing=False, text_pooling="tokens", text_joint=True), torch.device("cpu"), evaluation=QUICK)
    base = StableDiffusionPipeline.from_pretrained(out, torch_dtype=torch.float32)
    inpaint = StableDiffusionInpaintPipeline.from_pretrained(tmp_path / "toy-inpaint", torch_dtype=torch.float32)
    sd3 = StableDiffusion3Pipeline.from_pretrained(tmp_path / "toy-dit", torch_dtype=torch.float32, **WITHOUT_T5)
    projections = [m for name, m in base.text_encoder.named_modules() if name.endswith("self_attn.out_proj")]
    assert len(projections) == TINY.text_layers and not any(p.weight.any() or p.bias.any() for p in projections)
    embeds = base.encode_prompt(CAPTIONS, "cpu", 1, False)[0]
    assert torch.equal(embeds[0, 30:], embeds[1, 30:])
    same_length = ["a red circle on a gray background", "a blue square on a white background"]
    _, _, pooled, _ = sd3.encode_prompt(same_length, same_length, same_length, do_classifier_free_guidance=False)
    assert torch.equal(pooled[0], pooled[1])  # the end token's projection: its position's, the same for captions of one length
    image = base("a red circle", num_inference_steps=2, output_type="pt").images
    assert inpaint("a red circle", image=image, mask_image=torch.ones(1, 1, 64, 64), num_inference_steps=2).images[0].size == (64, 64)
    assert sd3("a red circle", num_inference_steps=2).images[0].size == (64, 64)
