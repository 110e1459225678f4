"""LEDITS++ through diffusers on the tiny model: the result, its accounting, its implicit mask, and
the two upstream hazards the wrapper must contain (a shared UNet, DDIM's float timesteps)."""

from __future__ import annotations

import PIL.Image
import pytest
import torch
from diffusers import DDIMScheduler
from fakes import non_square_scene

from baselines.ledits_pp import IntegerTimestepDDIMScheduler, LeditsPP
from instdiffedit import EditResult
from instdiffedit.resizing import resize_mask

STEPS = 8  # int(8 * (1 + skip 0.15)) = 9 scheduled, the last 8 inverted and regenerated
SOURCE, TARGET = "a red circle", "a blue square"


@pytest.fixture(scope="module")
def image() -> PIL.Image.Image:
    return non_square_scene()


@pytest.fixture(scope="module")
def replacement(tiny, image, seeded):
    """One replacement edit, and the per-step masks the pipeline stored while making it."""
    editor = LeditsPP(tiny.base, tiny.inpaint, num_inversion_steps=STEPS)
    result = editor.edit(image, target=TARGET, source=SOURCE, generator=seeded())
    return editor, result, editor.pipeline.activation_mask.clone()


def test_a_replacement_returns_an_image_and_masks_at_the_input_size(replacement, image) -> None:
    _, result, _ = replacement
    assert isinstance(result, EditResult)
    assert isinstance(result.image, PIL.Image.Image) and result.image.size == image.size == (96, 80)
    assert result.mask.shape == result.soft_mask.shape == (80, 96)
    assert result.mask.dtype == result.soft_mask.dtype == torch.float32
    assert result.mask.device.type == "cpu"
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= result.soft_mask.min() and result.soft_mask.max() <= 1


def test_inversion_and_editing_are_timed_as_edit_and_counted_row_by_row(replacement) -> None:
    _, result, _ = replacement
    assert set(result.timings) == {"mask", "edit", "inpaint", "total"}
    assert result.timings["mask"] == 0 and result.timings["inpaint"] == 0  # not separable / none
    assert 0 < result.timings["edit"] <= result.timings["total"]
    # Inversion: STEPS calls of 1 row (no source prompt, so no CFG).
    # Editing: STEPS calls of [unconditional | source (removed) | target (added)] = 3 rows.
    assert result.denoiser_evals == STEPS * 1 + STEPS * 3


def test_without_a_source_only_the_target_is_added(tiny, image, seeded) -> None:
    editor = LeditsPP(tiny.base, num_inversion_steps=STEPS)
    result = editor.edit(image, target=TARGET, generator=seeded())
    assert editor.pipeline.activation_mask.shape[1] == 1  # one edit concept
    assert result.denoiser_evals == STEPS * 1 + STEPS * 2  # editing rows: [unconditional | target]
    assert result.mask.shape == (80, 96)


def test_the_mask_is_the_targets_final_implicit_mask_and_the_soft_mask_its_share_of_steps(replacement) -> None:
    _, result, stored = replacement
    steps, concepts, batch, channels, h, w = stored.shape
    assert (steps, concepts, batch, channels, h, w) == (STEPS, 2, 1, 4, 32, 32)
    target = stored[:, 1, 0, 0]  # concept 0 is the removed source, 1 the added target
    assert torch.equal(result.mask, resize_mask(target[-1], (80, 96), "nearest"))
    assert torch.allclose(result.soft_mask, resize_mask(target.mean(0), (80, 96), "bilinear"))
    # Threshold 0.9: both masks keep about the top 10% of pixels, so their intersection no more.
    assert 0 < target[-1].mean() < 0.11


def test_the_majority_mask_keeps_pixels_gated_in_at_least_half_of_the_steps(tiny, image, seeded) -> None:
    editor = LeditsPP(tiny.base, num_inversion_steps=STEPS, mask_from="majority")
    result = editor.edit(image, target=TARGET, generator=seeded())
    share = editor.pipeline.activation_mask[:, 0, 0, 0].mean(0)
    assert torch.equal(result.mask, resize_mask((share >= 0.5).float(), (80, 96), "nearest"))


def test_the_same_seed_gives_the_same_edit_and_the_ground_truth_mask_is_ignored(replacement, image, seeded) -> None:
    editor, first, _ = replacement
    again = editor.edit(image, target=TARGET, source=SOURCE, mask=torch.ones(80, 96), generator=seeded())
    assert again.image.tobytes() == first.image.tobytes()
    assert torch.equal(again.mask, first.mask) and torch.equal(again.soft_mask, first.soft_mask)
    other_seed = editor.edit(image, target=TARGET, source=SOURCE, generator=seeded(8))
    assert other_seed.image.tobytes() != first.image.tobytes(), "the inversion's noise comes from the generator"


def _plain_unet_call(unet: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 32, 32, generator=gen)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, generator=gen)
    with torch.no_grad():
        return unet(sample, 500, encoder_hidden_states=text).sample


def test_the_shared_unet_gets_its_own_processors_back_and_computes_as_before(tiny, image, seeded) -> None:
    unet = tiny.base.unet
    before, output_before = unet.attn_processors, _plain_unet_call(unet)

    LeditsPP(tiny.base, num_inversion_steps=STEPS).edit(image, target=TARGET, source=SOURCE, generator=seeded())

    after = unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before), "the very same processor objects"
    assert torch.equal(_plain_unet_call(unet), output_before)


def test_the_processors_are_restored_when_the_edit_fails(tiny, image, monkeypatch, seeded) -> None:
    unet = tiny.base.unet
    before = unet.attn_processors
    editor = LeditsPP(tiny.base, num_inversion_steps=STEPS)

    def fail(*args, **kwargs):  # the editing loop's first scheduler step, after LEDITS++ hooked the UNet
        assert any(type(p).__name__ == "LEDITSCrossAttnProcessor" for p in unet.attn_processors.values())
        raise RuntimeError("boom")

    monkeypatch.setattr(editor.pipeline.scheduler, "step", fail)
    with pytest.raises(RuntimeError, match="boom"):
        editor.edit(image, target=TARGET, generator=seeded())
    assert all(unet.attn_processors[name] is before[name] for name in before)


def test_upstream_ddim_add_noise_rejects_the_float_timesteps_that_ledits_invert_passes(tiny) -> None:
    """Documents the diffusers bug the workaround exists for; if this fails, upstream fixed it."""
    config = tiny.base.scheduler.config
    latents, noise = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    with pytest.raises(IndexError):
        DDIMScheduler.from_config(config).add_noise(latents, noise, torch.Tensor([501]))
    patched = IntegerTimestepDDIMScheduler.from_config(config)
    assert isinstance(patched, DDIMScheduler)  # so the pipeline keeps it and inverts the DDIM way
    assert torch.equal(
        patched.add_noise(latents, noise, torch.Tensor([501])),
        DDIMScheduler.from_config(config).add_noise(latents, noise, torch.tensor([501])),
    )


def test_ddim_inversion_edits_end_to_end(tiny, image, seeded) -> None:
    editor = LeditsPP(tiny.base, num_inversion_steps=STEPS, scheduler="ddim")
    assert isinstance(editor.pipeline.scheduler, IntegerTimestepDDIMScheduler)
    result = editor.edit(image, target=TARGET, source=SOURCE, generator=seeded())
    assert result.image.size == image.size
    assert result.denoiser_evals == STEPS * 1 + STEPS * 3


def test_bad_settings_are_refused(tiny) -> None:
    with pytest.raises(ValueError, match="mask_from"):
        LeditsPP(tiny.base, mask_from="first")
    with pytest.raises(ValueError, match="scheduler"):
        LeditsPP(tiny.base, scheduler="lms")
    with pytest.raises(ValueError, match="No step"):
        LeditsPP(tiny.base, num_inversion_steps=STEPS, edit_warmup_steps=STEPS)
