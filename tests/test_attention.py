"""Cross-attention capture through attention processors on the tiny SD-architecture UNet."""

from __future__ import annotations

import pytest
import torch

from instdiffedit.attention import capture_cross_attention, cross_attention_layers


@pytest.fixture
def unet_inputs(tiny):
    gen = torch.Generator().manual_seed(0)
    unet = tiny.base.unet
    size = unet.config.sample_size
    sample = torch.randn(4, 4, size, size, generator=gen)  # [2 uncond | 2 cond]
    text = torch.randn(4, 77, unet.config.cross_attention_dim, generator=gen)
    return unet, sample, torch.tensor(500), text


def test_only_down_and_up_layers_at_the_requested_resolution_are_captured(tiny) -> None:
    names = cross_attention_layers(tiny.base.unet, downsample=4)
    assert names and all("attn2" in n for n in names)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in names} == {"down_blocks.2", "up_blocks.0"}
    assert not any(n.startswith("mid_block") for n in names)  # the mid block is at latent/4 too
    with pytest.raises(ValueError, match="latent/8"):
        cross_attention_layers(tiny.base.unet, downsample=8)


def test_captured_maps_have_one_row_per_conditional_sample_and_sum_to_one(unet_inputs) -> None:
    unet, sample, t, text = unet_inputs
    with torch.no_grad(), capture_cross_attention(unet, (32, 32), downsample=4) as store:
        unet(sample, t, encoder_hidden_states=text)
        maps = store.take()
    assert maps.shape == (2, 8, 8, 77)  # conditional half only, 32 / 4 = 8
    assert maps.dtype == torch.float32
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 8, 8))


def test_capture_changes_nothing_in_the_unet_output_and_restores_the_processors(unet_inputs) -> None:
    unet, sample, t, text = unet_inputs
    before = dict(unet.attn_processors)
    with torch.no_grad():
        plain = unet(sample, t, encoder_hidden_states=text).sample
        with capture_cross_attention(unet, (32, 32), downsample=4):
            captured = unet(sample, t, encoder_hidden_states=text).sample
    assert torch.equal(plain, captured)
    after = unet.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


def test_processors_are_restored_when_the_block_raises(unet_inputs) -> None:
    unet, *_ = unet_inputs
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), capture_cross_attention(unet, (32, 32)):
        raise RuntimeError("boom")
    assert all(unet.attn_processors[k] is before[k] for k in before)


def test_taking_maps_before_any_unet_call_is_an_error(unet_inputs) -> None:
    unet, *_ = unet_inputs
    with capture_cross_attention(unet, (32, 32)) as store, pytest.raises(RuntimeError, match="No cross-attention"):
        store.take()


def test_the_default_resolution_gives_maps_closest_to_the_papers_16x16(tiny) -> None:
    from diffusers import UNet2DConditionModel

    from instdiffedit.attention import default_downsample

    assert default_downsample(tiny.base.unet) == 2  # tiny: 32 x 32 latents, attention at 16 x 16 and 8 x 8

    def sd14_layout(sample_size: int) -> UNet2DConditionModel:  # SD 1.x's block layout, tiny widths
        return UNet2DConditionModel(
            sample_size=sample_size,
            block_out_channels=(8, 8, 8, 8),
            norm_num_groups=4,
            cross_attention_dim=8,
            attention_head_dim=2,
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )

    assert default_downsample(sd14_layout(64)) == 4  # 16 x 16 of a 64 x 64 latent, as the paper
    assert default_downsample(sd14_layout(96)) == 4  # 768 px: 24 x 24 is closer to 16 x 16 than 48 x 48
