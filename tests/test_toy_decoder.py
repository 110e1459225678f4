"""The toy decoder keeps what it is given: latents changed in one region change the image there only.

The first toy decoder brought a white background back brown when only the object's latents had
changed. Two paths carry a region's latents across the whole image in an
``AutoencoderKL`` decoder: the global mid-block attention, which the toy autoencoder no longer
has, and GroupNorm's image-wide statistics, which the training's splice loss is for (measured
in training.json: ``autoencoder.splice_psnr``). With the statistics held at a reference decode's,
what is left is the convolutions' reach, so pixels beyond it must not move at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.toy.training.nets import VAE_DOWNSAMPLING, build_vae

CHANNELS = (8, 16, 16)
LATENT = 48  # latents of 48 x 48: room beyond the decoder's reach (about 13 latent cells)
CHANGED = 6  # the top-left 6 x 6 latent cells change
REACH = 20  # latent cells: farther than any 3 x 3 convolution chain of the decoder reaches


@contextmanager
def group_norm_statistics_from(decoder: nn.Module, reference: torch.Tensor) -> Iterator[None]:
    """Inside, the decoder's GroupNorm layers normalise with the statistics they saw decoding ``reference``."""
    norms = [m for m in decoder.modules() if isinstance(m, nn.GroupNorm)]
    statistics: dict[nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.GroupNorm, args: tuple) -> None:
        x = args[0].reshape(args[0].shape[0], module.num_groups, -1)
        statistics[module] = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)

    def replay(module: nn.GroupNorm, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        mean, var = statistics[module]
        normed = ((x.reshape(x.shape[0], module.num_groups, -1) - mean) / (var + module.eps).sqrt()).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return normed * module.weight.view(shape) + module.bias.view(shape)

    handles = [m.register_forward_pre_hook(record) for m in norms]
    with torch.no_grad():
        decoder(reference)
    for handle in handles:
        handle.remove()
    handles = [m.register_forward_hook(replay) for m in norms]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def largest_far_change(**options: bool) -> float:
    """How much pixels beyond the convolutions' reach move when only the top-left latents change."""
    torch.manual_seed(0)
    vae = build_vae(CHANNELS, **options).eval()
    latents = torch.randn(1, 4, LATENT, LATENT)
    changed = latents.clone()
    changed[..., :CHANGED, :CHANGED] = 3 * torch.randn(1, 4, CHANGED, CHANGED)
    with group_norm_statistics_from(vae.decoder, vae.post_quant_conv(latents)), torch.no_grad():
        before, after = vae.decode(latents).sample, vae.decode(changed).sample
    far = (CHANGED + REACH) * VAE_DOWNSAMPLING
    return (before - after)[..., far:, far:].abs().max().item()


def test_without_mid_block_attention_far_pixels_do_not_move_when_a_region_s_latents_change() -> None:
    assert largest_far_change() < 1e-6  # the toy autoencoder's default


def test_with_mid_block_attention_they_do() -> None:
    assert largest_far_change(mid_block_attention=True) > 1e-3


def test_the_statistics_hold_keeps_a_decode_as_it_was() -> None:
    torch.manual_seed(0)
    vae = build_vae(CHANNELS).eval()
    latents = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        plain = vae.decode(latents).sample
        with group_norm_statistics_from(vae.decoder, vae.post_quant_conv(latents)):
            held = vae.decode(latents).sample
    assert F.mse_loss(plain, held) < 1e-10
