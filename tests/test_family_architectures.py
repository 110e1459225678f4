"""The full-size architectures the speed benchmark times are the published models' (built on the meta device: no memory, no weights)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.models.family_architectures import ARCHITECTURES
from instdiffedit.backbones import BACKBONE_FAMILIES, backbone_for, denoiser_of, family_of

BILLION = 1e9


def _parameters(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / BILLION


@pytest.fixture(scope="module")
def built() -> dict:
    return {name: arch.build(torch.device("meta"), arch.dtype, 0) for name, arch in ARCHITECTURES.items()}


# Parameter counts of the hub repositories' modules, in billions (denoiser, its twin's, text encoders).
PUBLISHED = {
    "sdxl": {"unet": 2.567, "twin": 2.567, "text_encoder": 0.123, "text_encoder_2": 0.695},
    "sd35_medium": {"transformer": 2.243, "text_encoder": 0.124, "text_encoder_2": 0.695, "text_encoder_3": 4.762},
    "flux_dev": {"transformer": 11.901, "twin": 11.902, "text_encoder": 0.123, "text_encoder_2": 4.762},
    "kontext_dev": {"transformer": 11.901, "text_encoder": 0.123, "text_encoder_2": 4.762},  # FLUX.1 [dev]'s modules
}
# Sizes the model cards give to their own precision (billions): Qwen-Image's 20 B MMDiT, Qwen2.5-VL-7B's 8.29 B.
PUBLISHED_ROUNDED = {"qwen_image_edit": {"transformer": (20, 0.5), "text_encoder": (8.29, 0.005)}}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_each_architecture_has_the_published_parameter_counts(built, name) -> None:
    pipes = built[name]
    published = {key: (billions, 0.001) for key, billions in PUBLISHED.get(name, {}).items()} | PUBLISHED_ROUNDED.get(name, {})
    assert published, f"no published sizes for {name}"
    for key, (billions, tolerance) in published.items():
        module = denoiser_of(pipes.inpaint) if key == "twin" else getattr(pipes.base, key)
        assert _parameters(module) == pytest.approx(billions, abs=tolerance), key


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_each_architecture_is_built_in_its_published_precision_at_1024_px(built, name) -> None:
    pipes, dtype = built[name], ARCHITECTURES[name].dtype
    for pipe in filter(None, (pipes.base, pipes.inpaint)):
        for key, module in pipe.components.items():
            if isinstance(module, torch.nn.Module):
                # SDXL's VAE overflows in float16: it runs in float32, as load_family keeps it
                expected = torch.float32 if key == "vae" and dtype == torch.float16 else dtype
                assert {t.dtype for t in module.state_dict().values() if t.is_floating_point()} == {expected}, key
    assert pipes.base.default_sample_size * pipes.base.vae_scale_factor == pipes.resolution == 1024
    if family_of(pipes.base) in BACKBONE_FAMILIES:
        assert backbone_for(pipes.base).resolution == 1024


def test_the_twins_take_their_families_inpainting_inputs(built) -> None:
    assert denoiser_of(built["sdxl"].inpaint).config.in_channels == 9
    assert denoiser_of(built["flux_dev"].inpaint).config.in_channels == backbone_for(built["flux_dev"].inpaint).twin_in_channels == 384
    assert built["sd35_medium"].inpaint is None
    assert built["kontext_dev"].inpaint is None and built["qwen_image_edit"].inpaint is None  # instruction editors take no mask
