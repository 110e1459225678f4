"""Our inpainting loop for the SD-inpainting UNet gives diffusers' StableDiffusionInpaintPipeline's
images (the InstDiffEdit authors' final step), on the tiny model in float32."""

from __future__ import annotations

import numpy
import pytest
import torch

from benchmarks.data.synthetic import SyntheticDataset
from instdiffedit.inpaint import InpaintingModelInpainter

STEPS = 4
SIDE = 64


@pytest.fixture(scope="module")
def items():
    dataset = SyntheticDataset(n=2, size=SIDE, seed=3)
    return [dataset.load(i) for i in dataset.item_ids()]


def _masks(k: int) -> torch.Tensor:
    """Soft-edged masks, so that the binarisation at 0.5 matters: a ramp over the columns."""
    ramp = torch.linspace(0, 1, SIDE).expand(SIDE, SIDE)
    return torch.stack([ramp, ramp.flip(-1)])[:k, None]


def _pipeline_images(pipe, images, masks, prompts, generators):
    single = len(images) == 1
    return pipe(
        prompt=prompts[0] if single else list(prompts),
        image=images[0] if single else list(images),
        mask_image=masks,
        height=SIDE,
        width=SIDE,
        num_inference_steps=STEPS,
        guidance_scale=7.5,
        generator=generators[0] if single else list(generators),
    ).images


def _pixels(image) -> numpy.ndarray:
    return numpy.asarray(image, dtype=numpy.int16)


def test_one_item_gets_the_pipelines_image(tiny, items) -> None:
    inpainter = InpaintingModelInpainter(tiny.inpaint, STEPS, 7.5, resolution=SIDE)
    item = items[0]
    ours = inpainter(item.image, _masks(1), item.target, torch.Generator().manual_seed(7))
    (theirs,) = _pipeline_images(tiny.inpaint, [item.image], _masks(1), [item.target], [torch.Generator().manual_seed(7)])
    assert numpy.array_equal(_pixels(ours), _pixels(theirs))


def test_a_batch_gets_the_pipelines_images_with_one_generator_per_item(tiny, items) -> None:
    inpainter = InpaintingModelInpainter(tiny.inpaint, STEPS, 7.5, resolution=SIDE)
    images, prompts = [item.image for item in items], [item.target for item in items]
    ours = inpainter.batch(images, _masks(2), prompts, [torch.Generator().manual_seed(s) for s in (1, 2)])
    theirs = _pipeline_images(tiny.inpaint, images, _masks(2), prompts, [torch.Generator().manual_seed(s) for s in (1, 2)])
    assert len(ours) == 2
    for mine, pipelines in zip(ours, theirs, strict=True):  # the pipeline encodes item by item, we in one call
        assert numpy.abs(_pixels(mine) - _pixels(pipelines)).max() <= 1
    assert numpy.abs(_pixels(ours[0]) - _pixels(ours[1])).max() > 10, "different items should give different images"


def test_a_model_without_the_9_channel_unet_is_refused_with_the_fix(tiny) -> None:
    from diffusers import StableDiffusionInpaintPipeline

    four_channels = StableDiffusionInpaintPipeline(**{**tiny.inpaint.components, "unet": tiny.base.unet})
    with pytest.raises(ValueError, match="9 .*model.inpaint"):
        InpaintingModelInpainter(four_channels)


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_the_sdxl_and_flux_fill_twins_get_their_pipelines_images(tiny_family, items, family: str) -> None:
    """Our loop for SDXL's 9-channel twin and for FLUX.1 Fill, against their diffusers pipelines at strength 1."""
    twin = tiny_family(family).inpaint
    inpainter = InpaintingModelInpainter(twin, STEPS, resolution=SIDE)
    images, prompts = [item.image for item in items], [item.target for item in items]
    ours = inpainter.batch(images, _masks(2), prompts, [torch.Generator().manual_seed(s) for s in (1, 2)])
    strength = {"strength": 1.0} if family == "sdxl" else {}  # the SDXL pipeline's default is 0.9999
    for k in range(2):  # one at a time: the pipelines take a single generator per call
        (theirs,) = twin(
            prompt=prompts[k],
            image=images[k],
            mask_image=_masks(2)[k : k + 1],
            height=SIDE,
            width=SIDE,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(k + 1),
            **strength,
        ).images
        assert numpy.abs(_pixels(ours[k]) - _pixels(theirs)).max() <= 1, (family, k)
    assert inpainter.guidance_scale == {"sdxl": 7.5, "flux": 30.0}[family]  # each twin pipeline's default


def test_a_family_without_a_twin_says_to_blend(tiny_family) -> None:
    with pytest.raises(ValueError, match="SD 3.x family has no inpainting twin; set model.inpaint to null"):
        InpaintingModelInpainter(tiny_family("sd3").base)
