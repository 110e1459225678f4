"""Cross-attention capture through diffusers attention processors.

A capturing processor wraps the layer's own processor: the layer's output is computed exactly
as before (SDPA stays in charge), and the attention probabilities of the conditional rows are
recomputed from the same query and key projections and written on the device. Only the
cross-attention layers of the down and up blocks at the requested resolution are wrapped; the
original processors come back when the context exits.

The capture works inside CUDA graphs (:mod:`instdiffedit.fast_paths`): before each UNet call the
store picks a preallocated buffer for the call's shapes, each layer writes its maps into its
own slot of it in place, and :meth:`CrossAttentionStore.take` averages the slots outside the
graph. Writes rather than sums: running a call again (a warm-up, then the replay) leaves the
same values, so nothing has to be reset between calls.

The capturing processors (and their store) are made once per UNet and layer set and reused by
every later capture: graphs are keyed by the processors' identity and a compiled UNet guards on
it, so new objects at every edit would capture (or compile) again at every edit.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from instdiffedit.fast_paths import denoiser_runner, is_graph_safe

_CROSS_ATTENTION = re.compile(r"^(down|up)_blocks\.(\d+)\.attentions\.\d+\.transformer_blocks\.\d+\.attn2\.processor$")


class CrossAttentionStore:
    """The cross-attention maps of the latest UNet call, averaged over heads and layers.

    ``take()`` returns ``R x h x w x L`` (R conditional rows, L text tokens) in float32, once
    per call. Float32 keeps the averages exact in fp16 models.
    """

    def __init__(self, spatial: tuple[int, int], layers: int, conditional_only: bool = True) -> None:
        self.spatial = spatial
        self.layers = layers
        self.conditional_only = conditional_only
        self._buffers: dict[tuple, torch.Tensor] = {}
        self.slots: torch.Tensor | None = None  # layers x R x (h w) x L: the current call's buffer
        self._unread = False

    def prepare(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *conditioning: torch.Tensor) -> None:
        """Before a UNet call: select (allocating once) the slots for its rows and text length."""
        rows = sample.shape[0] // 2 if self.conditional_only else sample.shape[0]
        key = (rows, encoder_hidden_states.shape[1], sample.device)
        slots = self._buffers.get(key)
        if slots is None:
            height, width = self.spatial
            slots = torch.zeros(self.layers, rows, height * width, key[1], dtype=torch.float32, device=sample.device)
            self._buffers[key] = slots
        self.slots = slots
        self._unread = True

    @torch.no_grad()
    def record(self, layer: int, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor) -> None:
        if self.conditional_only:
            half = hidden_states.shape[0] // 2
            hidden_states, encoder_hidden_states = hidden_states[half:], encoder_hidden_states[half:]
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key)  # (rows * heads) x HW x L
        rows = hidden_states.shape[0]
        self.slots[layer].copy_(probs.float().view(rows, attn.heads, *probs.shape[1:]).mean(dim=1))

    def take(self) -> torch.Tensor:
        """The latest call's maps; an error if no UNet call came since the last ``take()``."""
        if not self._unread:
            raise RuntimeError("No cross-attention was recorded since the last take(): was the UNet called inside the capture context?")
        self._unread = False
        return self.slots.mean(dim=0).unflatten(1, self.spatial)


class CapturingProcessor:
    """Runs the wrapped processor unchanged and hands the layer's inputs to a store, as slot ``layer``."""

    def __init__(self, inner: object, store: CrossAttentionStore, layer: int) -> None:
        self.inner = inner
        self.store = store
        self.layer = layer

    @property
    def graph_safe(self) -> bool:
        """The store writes on the device only; graph-safe whenever the wrapped processor is."""
        return is_graph_safe(self.inner)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("CapturingProcessor supports unmasked cross-attention on token sequences only.")
        output = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        self.store.record(self.layer, attn, hidden_states, encoder_hidden_states)
        return output


PAPER_MAP_SIDE = 16
"""The side of the cross-attention maps InstDiffEdit reads in the paper (SD 1.x at 512 px)."""


def _layer_factors(unet: UNet2DConditionModel) -> dict[str, tuple[str, int]]:
    """Each down/up-block cross-attention processor's (block kind, latent downsampling factor).

    Read off the model's structure (which blocks down- or up-sample), so any
    UNet2DConditionModel layout works; the mid block is never included.
    """
    block_factor: dict[tuple[str, int], int] = {}
    factor = 1
    for i, block in enumerate(unet.down_blocks):
        block_factor["down", i] = factor
        factor *= 2 if getattr(block, "downsamplers", None) else 1
    for i, block in enumerate(unet.up_blocks):
        block_factor["up", i] = factor
        factor //= 2 if getattr(block, "upsamplers", None) else 1
    return {name: (match[1], block_factor[match[1], int(match[2])]) for name in unet.attn_processors if (match := _CROSS_ATTENTION.match(name))}


def default_downsample(unet: UNet2DConditionModel) -> int:
    """The paper's layers, for any UNet: of the resolutions at which both the down and the up
    blocks cross-attend, the one whose maps are closest to 16 x 16 at the UNet's native latent
    size (the coarser on a tie).

    For SD 1.x at 512 px that is latent / 4, its 16 x 16 layers (the paper's choice). Maps much
    coarser than 16 x 16 cover a small object with a cell or two and leave a flat floor over the
    background, which the threshold then lets through (the toy model's 8 x 8 layers did).
    """
    layers = _layer_factors(unet).values()
    shared = {f for kind, f in layers if kind == "down"} & {f for kind, f in layers if kind == "up"}
    if not shared:
        raise ValueError("The UNet has no resolution at which both its down and up blocks cross-attend.")
    side = unet.config.sample_size
    side = side[0] if isinstance(side, (tuple, list)) else side
    if not side:
        raise ValueError("The UNet's config has no sample_size to place the 16 x 16 maps; pass attention_downsample.")
    return min(shared, key=lambda factor: (abs(math.log2(side / factor / PAPER_MAP_SIDE)), -factor))


def cross_attention_layers(unet: UNet2DConditionModel, downsample: int) -> list[str]:
    """Processor names of the down/up-block cross-attention layers at ``latent / downsample``."""
    layers = _layer_factors(unet)
    names = [name for name, (_, factor) in layers.items() if factor == downsample]
    if not names:
        available = sorted({factor for _, factor in layers.values()})
        raise ValueError(f"The UNet has no down/up-block cross-attention at latent/{downsample}; it has them at latent/{available}.")
    return names


@contextmanager
def capture_cross_attention(
    unet: UNet2DConditionModel,
    latent_size: tuple[int, int],
    downsample: int | None = None,
    conditional_only: bool = True,
) -> Iterator[CrossAttentionStore]:
    """Capture cross-attention at ``latent_size / downsample`` while the context is open.

    ``downsample`` defaults to :func:`default_downsample` (4 for SD 1.x). With
    ``conditional_only`` the batch is taken to be laid out for classifier-free guidance,
    ``[uncond | cond]``, and only the second half is recorded.
    """
    downsample = downsample or default_downsample(unet)
    height, width = latent_size
    if height % downsample or width % downsample:
        raise ValueError(f"Latent size {latent_size} is not divisible by the attention downsample {downsample}.")
    original = unet.attn_processors
    store, wrapped = _capturing_processors(unet, original, (height // downsample, width // downsample), downsample, conditional_only)
    # Calls through the UNet's runner (the diffusion steps') and direct calls both prepare the store.
    handles = [
        denoiser_runner(unet).listen(store.prepare),
        unet.register_forward_pre_hook(lambda _, args, kwargs: store.prepare(*_unet_inputs(args, kwargs)), with_kwargs=True),
    ]
    unet.set_attn_processor({**original, **wrapped})
    try:
        yield store
    finally:
        unet.set_attn_processor(dict(original))
        for handle in handles:
            handle.remove()


def _unet_inputs(args: tuple, kwargs: dict) -> tuple:
    """``(sample, timestep, encoder_hidden_states)`` of a ``UNet2DConditionModel`` call."""
    named = dict(zip(("sample", "timestep", "encoder_hidden_states"), args)) | kwargs
    return named["sample"], named["timestep"], named["encoder_hidden_states"]


_Capture = tuple[CrossAttentionStore, dict[str, CapturingProcessor]]
_CAPTURES: weakref.WeakKeyDictionary[UNet2DConditionModel, dict[tuple, _Capture]] = weakref.WeakKeyDictionary()


def _capturing_processors(
    unet: UNet2DConditionModel,
    original: dict[str, object],
    spatial: tuple[int, int],
    downsample: int,
    conditional_only: bool,
) -> _Capture:
    """The store and wrapping processors for these layers of ``unet``, the same objects every time.

    Made anew only when the layers' own processors have changed since (e.g. a pipeline
    installed others), so a wrapper never runs a stale processor.
    """
    names = cross_attention_layers(unet, downsample)
    key = (spatial, downsample, conditional_only)
    per_unet = _CAPTURES.setdefault(unet, {})
    cached = per_unet.get(key)
    if cached is None or any(cached[1][name].inner is not original[name] for name in names):
        store = CrossAttentionStore(spatial, len(names), conditional_only)
        cached = store, {name: CapturingProcessor(original[name], store, layer) for layer, name in enumerate(names)}
        per_unet[key] = cached
    return cached
