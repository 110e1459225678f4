"""The original DiffEdit (noise-difference mask, DDIM encoding, masked DDIM decoding) through
diffusers on the tiny model: the result, its accounting, determinism, the reference text."""

from __future__ import annotations

import PIL.Image
import pytest
import torch
from fakes import non_square_scene

from baselines.diffedit_ddim import DiffEditDDIM
from instdiffedit import EditResult
from instdiffedit.resizing import resize_mask

STEPS, RATIO, MAPS = 8, 0.5, 3  # int(8 * 0.5) = 4 encoding and 4 decoding steps
SOURCE, TARGET = "a red circle", "a blue square"


@pytest.fixture(scope="module")
def image() -> PIL.Image.Image:
    return non_square_scene()


def _editor(tiny, **knobs) -> DiffEditDDIM:
    return DiffEditDDIM(tiny.base, tiny.inpaint, num_inference_steps=STEPS, encode_ratio=RATIO, num_maps_per_mask=MAPS, **knobs)


@pytest.fixture(scope="module")
def replacement(tiny, image, seeded):
    editor = _editor(tiny)
    return editor, editor.edit(image, target=TARGET, source=SOURCE, generator=seeded())


def test_an_edit_returns_an_image_and_a_binary_mask_at_the_input_size(replacement, image) -> None:
    _, result = replacement
    assert isinstance(result, EditResult)
    assert isinstance(result.image, PIL.Image.Image) and result.image.size == image.size == (96, 80)
    assert result.mask.shape == (80, 96) and result.mask.dtype == torch.float32
    assert result.mask.device.type == "cpu"
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}
    assert result.soft_mask is None  # diffusers keeps the pre-threshold map to itself


def test_the_mask_is_diffusers_generate_mask_at_the_same_seed(replacement, image, seeded) -> None:
    editor, result = replacement
    size = editor.resolution  # 64 px, the tiny UNet's native size
    work_image = image.convert("RGB").resize((size, size), PIL.Image.Resampling.BICUBIC)
    expected = editor.pipeline.generate_mask(
        image=work_image,
        source_prompt=SOURCE,
        target_prompt=TARGET,
        num_maps_per_mask=MAPS,
        mask_encode_strength=0.5,
        mask_thresholding_ratio=3.0,
        num_inference_steps=STEPS,
        guidance_scale=7.5,
        generator=seeded(),
    )
    assert torch.equal(result.mask, resize_mask(torch.from_numpy(expected[0]).float(), (80, 96), "nearest"))


def test_timings_split_mask_from_encode_and_decode_and_unet_rows_are_counted(replacement) -> None:
    _, result = replacement
    assert set(result.timings) == {"mask", "edit", "inpaint", "total"}
    assert result.timings["mask"] > 0 and result.timings["edit"] > 0 and result.timings["inpaint"] == 0
    assert result.timings["total"] >= result.timings["mask"] + result.timings["edit"]
    k = int(STEPS * RATIO)
    mask = MAPS * 2 * 2  # one call: n noises x [reference, query] x CFG [negative, text]
    encode = k * 1  # DDIM inversion with the unconditional model, as the paper encodes
    decode = k * 2  # masked DDIM decoding with the query, with CFG
    assert result.denoiser_evals == mask + encode + decode == 24


def test_encoding_with_the_source_text_takes_two_unet_rows_per_step(tiny, image, seeded) -> None:
    result = _editor(tiny, encode_text="source").edit(image, target=TARGET, source=SOURCE, generator=seeded())
    k = int(STEPS * RATIO)
    assert result.denoiser_evals == MAPS * 2 * 2 + k * 2 + k * 2


def test_the_same_seed_gives_the_same_edit_and_the_ground_truth_mask_is_ignored(replacement, image, seeded) -> None:
    editor, first = replacement
    again = editor.edit(image, target=TARGET, source=SOURCE, mask=torch.ones(80, 96), generator=seeded())
    assert again.image.tobytes() == first.image.tobytes()
    assert torch.equal(again.mask, first.mask)
    other_seed = editor.edit(image, target=TARGET, source=SOURCE, generator=seeded(8))
    assert other_seed.image.tobytes() != first.image.tobytes(), "noises and VAE samples come from the generator"


def test_without_a_source_the_reference_is_the_empty_text(tiny, image, seeded) -> None:
    editor = _editor(tiny, decode_negative="source")  # the reference reaches all three steps
    no_source = editor.edit(image, target=TARGET, generator=seeded())
    empty_source = editor.edit(image, target=TARGET, source="", generator=seeded())
    assert no_source.image.tobytes() == empty_source.image.tobytes()
    assert torch.equal(no_source.mask, empty_source.mask)


def test_bad_settings_are_refused(tiny) -> None:
    with pytest.raises(ValueError, match="encode_text"):
        DiffEditDDIM(tiny.base, encode_text="query")
    with pytest.raises(ValueError, match="decode_negative"):
        DiffEditDDIM(tiny.base, decode_negative="target")
    with pytest.raises(ValueError, match="encode_ratio"):
        DiffEditDDIM(tiny.base, encode_ratio=0)
