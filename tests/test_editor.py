"""InstDiffEdit end to end on the tiny model: the loop, the result, the accounting."""

from __future__ import annotations

import PIL.Image
import pytest
import torch

from instdiffedit import EditResult, InstDiffEdit

STEPS = 10  # strength 0.5 -> 5 guided steps: enough to exercise the loop, cheap on a CPU


def test_outside_the_mask_the_guided_latents_equal_the_renoised_original(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, num_inference_steps=STEPS)
    latents, masks = editor.mask_guided_edit(item.image, item.target, seeded())

    d = editor.backbone
    z0 = d.encode(item.image)
    timesteps = d.timesteps(STEPS, 0.5)
    noise = d.noise(tuple(latents.shape), seeded())
    renoised_last = d.noised_trajectory(z0, noise, timesteps, at="t")[-1]
    outside = masks.history[-1] == 0
    assert masks.steps == len(timesteps) == 5
    assert 0 < outside.float().mean() < 1, "the tiny model's mask should be neither empty nor full here"
    assert torch.equal(latents[..., outside], renoised_last[..., outside])
    assert not torch.equal(latents[..., ~outside], renoised_last[..., ~outside])


def test_blending_at_t_minus_1_ends_on_the_clean_original_outside_the_mask(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, num_inference_steps=STEPS, blend_with="t-1")
    latents, masks = editor.mask_guided_edit(item.image, item.target, seeded())
    z0 = editor.backbone.encode(item.image)
    outside = masks.history[-1] == 0
    assert torch.equal(latents[..., outside], z0.expand_as(latents)[..., outside])


def test_edit_returns_an_image_and_masks_at_the_input_size_with_timings_and_unet_count(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, tiny.inpaint, num_inference_steps=STEPS, inpaint_steps=4)
    result = editor.edit(item.image, target=item.target, generator=seeded())

    assert isinstance(result, EditResult)
    assert isinstance(result.image, PIL.Image.Image) and result.image.size == item.image.size
    assert result.mask.shape == result.soft_mask.shape == (item.image.height, item.image.width)
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= result.soft_mask.min() and result.soft_mask.max() <= 1
    assert set(result.timings) == {"mask", "edit", "inpaint", "total"}
    assert result.timings["total"] >= result.timings["mask"] + result.timings["inpaint"]
    # 5 guided steps x (3 uncond + 3 cond) rows, then the inpainting's 5 PNDM calls (4 steps) x 2 rows.
    assert len(editor.inpainter.backbone.schedule.scheduler.timesteps) == 5
    assert result.denoiser_evals == 5 * 6 + 5 * 2


def test_the_same_seed_gives_the_same_edit(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, tiny.inpaint, num_inference_steps=STEPS, inpaint_steps=4)
    first = editor.edit(item.image, target=item.target, generator=seeded())
    second = editor.edit(item.image, target=item.target, generator=seeded())
    assert torch.equal(first.mask, second.mask)
    assert first.image.tobytes() == second.image.tobytes()


def test_decode_output_skips_inpainting(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, tiny.inpaint, num_inference_steps=STEPS, output="decode")
    result = editor.edit(item.image, target=item.target, generator=seeded())
    assert result.denoiser_evals == 5 * 6
    assert result.timings["inpaint"] == 0 and result.image.size == item.image.size


def test_the_result_keeps_every_steps_instant_mask(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, num_inference_steps=STEPS, output="decode")
    result = editor.edit(item.image, target=item.target, generator=seeded())
    _, masks = editor.mask_guided_edit(item.image, item.target, seeded())
    assert result.mask_history.dtype == torch.bool and result.mask_history.device.type == "cpu"
    assert torch.equal(result.mask_history, torch.stack(masks.history).bool())
    assert result.mask_history.shape[0] == 5  # one binary mask per guided step


def test_without_an_inpainting_model_the_base_model_inpaints_by_latent_blending(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, None, num_inference_steps=STEPS, inpaint_steps=4)
    result = editor.edit(item.image, target=item.target, generator=seeded())
    assert result.denoiser_evals == 5 * 6 + 4 * 2


def test_latent_blend_inpainting_with_an_empty_mask_returns_the_autoencoded_input(tiny, item, seeded) -> None:
    editor = InstDiffEdit(tiny.base, None, inpaint_steps=4)
    d = editor.backbone
    work = item.image.resize((d.resolution, d.resolution))
    empty = torch.zeros(1, 1, d.resolution, d.resolution)
    repainted = editor.inpainter(work, empty, "a cat", seeded())
    assert repainted.tobytes() == d.decode(d.encode(work))[0].tobytes()


@pytest.mark.parametrize("kwargs", [{"output": "latents"}, {"blend_with": "t+1"}, {"num_noises": 0}, {"scheduler": "NoSuchScheduler"}])
def test_unknown_settings_are_refused_with_the_allowed_values(tiny, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        InstDiffEdit(tiny.base, **kwargs)


def test_a_half_precision_model_edits_in_its_own_dtype(tiny, _private_cache, item, seeded) -> None:
    """The blend with the float32 mask must not promote the latents (the fp16 UNet rejects float32)."""
    from benchmarks.models.loading import load_pretrained
    from benchmarks.models.tiny import TINY_MODEL_NAME

    half = load_pretrained(str(_private_cache / TINY_MODEL_NAME / "base"), None, device="cpu", dtype="bfloat16")
    editor = InstDiffEdit(half.base, num_inference_steps=STEPS)
    latents, masks = editor.mask_guided_edit(item.image, item.target, seeded())
    assert latents.dtype == torch.bfloat16
    assert masks.steps == 5


def test_masks_are_made_on_the_papers_64x64_grid_and_resized_to_the_latents_for_the_blend(tiny, item, seeded) -> None:
    import torch.nn.functional as F

    editor = InstDiffEdit(tiny.base, num_inference_steps=STEPS)
    _, masks = editor.mask_guided_edit(item.image, item.target, seeded())
    latent_size = editor.backbone.latent_size
    assert masks.binary.shape == masks.soft.shape == (64, 64) != latent_size
    assert masks.history[-1].shape == latent_size
    expected = (F.interpolate(masks.binary[None, None], size=latent_size, mode="area")[0, 0] >= 0.5).float()
    assert torch.equal(masks.history[-1], expected)
    coarse = InstDiffEdit(tiny.base, num_inference_steps=STEPS, mask_size=latent_size[0])
    _, same_grid = coarse.mask_guided_edit(item.image, item.target, seeded())
    assert same_grid.binary.shape == latent_size and torch.equal(same_grid.history[-1], same_grid.binary)
