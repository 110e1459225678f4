"""FlowEdit on the tiny flow-matching models: the published settings per family, its budget of
transformer calls, and what the ODE does in the cases whose answer is known."""

from __future__ import annotations

import pytest
import torch

from baselines import FlowEdit, SDEdit
from baselines.flowedit import PUBLISHED
from benchmarks.data.synthetic import SyntheticDataset
from instdiffedit.backbones.base import TextGuidance

FAMILIES = ("sd3", "flux")
ROWS_PER_LATENT = {"sd3": 2, "flux": 1}  # classifier-free guidance on SD 3.x, embedded guidance on FLUX.1 [dev]


@pytest.fixture(scope="module")
def item():
    return SyntheticDataset(n=1, size=64, seed=3).load("synthetic-00000")


def _seeded(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _latents(editor: FlowEdit, item, *, target: str | None = None, source: str | None = None, seed: int = 5) -> torch.Tensor:
    stage = editor.first_stage(item.image, target=target or item.target, source=source or item.source, mask=None, generator=_seeded(seed))
    return stage.latents


@pytest.mark.parametrize(("family", "published"), [("sd3", (50, 33, 3.5, 13.5)), ("flux", (28, 24, 1.5, 5.5))])
def test_unset_settings_are_the_authors_for_the_models_family_and_set_ones_win(tiny_family, family: str, published) -> None:
    editor = FlowEdit(tiny_family(family).base)
    assert (editor.num_inference_steps, editor.n_max, editor.source_guidance_scale, editor.target_guidance_scale) == published
    assert (editor.n_min, editor.n_avg) == (0, 1)
    assert FlowEdit(tiny_family(family).base, n_max=5, target_guidance_scale=2.0).n_max == 5
    assert set(PUBLISHED) == FlowEdit.capabilities.families


@pytest.mark.parametrize("family", FAMILIES)
def test_each_flowedit_step_costs_source_and_target_per_noise_and_each_final_step_the_target_alone(tiny_family, item, family: str) -> None:
    editor = FlowEdit(tiny_family(family).base, num_inference_steps=10, n_max=6, n_min=2, n_avg=2)
    result = editor.edit(item.image, target=item.target, source=item.source, generator=_seeded())
    assert result.denoiser_evals == ROWS_PER_LATENT[family] * ((6 - 2) * 2 * 2 + 2)
    assert result.mask is None and result.soft_mask is None and result.mask_history is None
    assert result.image.size == item.image.size and result.timings["edit"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_with_n_max_zero_the_result_is_the_sources_reconstruction(tiny_family, item, family: str) -> None:
    editor = FlowEdit(tiny_family(family).base, n_max=0)
    assert torch.equal(_latents(editor, item), editor.backbone.encode(item.image))
    assert editor.edit(item.image, target=item.target, source=item.source, generator=_seeded()).denoiser_evals == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_equal_texts_and_guidance_give_no_velocity_difference_so_the_latents_stay_the_sources(tiny_family, item, family: str) -> None:
    editor = FlowEdit(tiny_family(family).base, num_inference_steps=10, n_max=8, n_avg=2, source_guidance_scale=4.0, target_guidance_scale=4.0)
    x_src = editor.backbone.encode(item.image)
    unchanged = _latents(editor, item, source=item.target)  # V = v(z_src + x_src - x_src) - v(z_src): rounding only
    edited = _latents(editor, item)
    assert (unchanged - x_src).abs().max() < 1e-5
    assert (edited - x_src).abs().max() > 1e-2, "the check above would pass for an editor that edits nothing"


@pytest.mark.parametrize("family", FAMILIES)
def test_with_n_min_equal_to_n_max_flowedit_is_sdedit_from_that_step(tiny_family, item, family: str) -> None:
    """No FlowEdit step: the switch noises x_src to the first step and samples with the target text, as SDEdit does."""
    pipe = tiny_family(family).base
    flowedit = FlowEdit(pipe, num_inference_steps=10, n_max=4, n_min=4, target_guidance_scale=6.0)
    sdedit = SDEdit(pipe, num_inference_steps=10, strength=0.4, guidance_scale=6.0)
    expected = sdedit.first_stage(item.image, target=item.target, source=None, mask=None, generator=_seeded()).latents
    torch.testing.assert_close(_latents(flowedit, item), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_seed_decides_the_noises(tiny_family, item, family: str) -> None:
    editor = FlowEdit(tiny_family(family).base, num_inference_steps=10, n_max=6)
    assert torch.equal(_latents(editor, item, seed=1), _latents(editor, item, seed=1))
    assert not torch.equal(_latents(editor, item, seed=1), _latents(editor, item, seed=2))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_flowedit_step_is_one_denoiser_call_for_source_and_target_and_equals_two_separate_calls(tiny_family, item, family: str, monkeypatch) -> None:
    """The authors batch the source and the target velocities; the ODE is the one two calls per step give."""
    editor = FlowEdit(tiny_family(family).base, num_inference_steps=10, n_max=6, n_avg=2)
    d = editor.backbone
    calls = []
    runner_call = type(d.runner).__call__
    monkeypatch.setattr(type(d.runner), "__call__", lambda self, *args: calls.append(args[0].shape[0]) or runner_call(self, *args))
    batched = _latents(editor, item)
    assert calls == [ROWS_PER_LATENT[family] * 2 * 2] * 6  # [source | target] x 2 noises, one call per step
    monkeypatch.undo()

    # Two calls a step, the source's then the target's, from the same noises.
    generator = _seeded()
    x_src = d.encode(item.image)
    timesteps = d.last_timesteps(10, 6)
    noises = d.noise((6 * 2, *x_src.shape[1:]), generator).unflatten(0, (6, 2))
    source = d.text_guidance([item.source] * 2, editor.source_guidance_scale)
    target = d.text_guidance([item.target] * 2, editor.target_guidance_scale)

    def predict(index: int, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        z_src = d.add_noise(x_src, noises[index], timesteps[index])
        v_src = d.guided_prediction(z_src, t, source)
        v_tar = d.guided_prediction(z + z_src - x_src, t, target)
        return (v_tar - v_src).mean(dim=0, keepdim=True)

    separate = d.sample_loop(x_src, timesteps, predict)
    torch.testing.assert_close(batched, separate, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_stacked_guidance_keeps_the_predictions_in_the_models_dtype(dtype: torch.dtype) -> None:
    """Per-row scales in float32 would promote a half-precision prediction (and every latent after it)
    to float32, which a captured half-precision graph refuses."""
    source = TextGuidance((torch.zeros(2, 3, 8, dtype=dtype),), (torch.zeros(2, 3, 8, dtype=dtype),), 3.5)
    target = TextGuidance((torch.ones(2, 3, 8, dtype=dtype),), (torch.zeros(2, 3, 8, dtype=dtype),), 13.5)
    stacked = TextGuidance.stack(source, target)
    uncond, cond = torch.zeros(4, 1, 2, 2, dtype=dtype), torch.ones(4, 1, 2, 2, dtype=dtype)
    guided = uncond + stacked.scale_of(slice(0, 4)) * (cond - uncond)
    assert guided.dtype == dtype
    assert guided[:2].eq(3.5).all() and guided[2:].eq(13.5).all()
