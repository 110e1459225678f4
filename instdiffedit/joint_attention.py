"""Text-attention capture for joint-attention transformers: SD 3.x (MMDiT) and FLUX.1.

In these models image and text tokens attend together: each layer runs one softmax over the
image keys and the text keys. What InstDiffEdit reads is the image-query -> text-key block of
those probabilities, one map per text token at the transformer's token grid (H/16 x W/16 for
both families). A capturing processor wraps each chosen layer's own processor, so the layer's
output is computed exactly as before (its attention kernel stays in charge); it then recomputes
the image queries and the keys with the layer's own projections, qk-norms and (FLUX) rotary
embeddings and accumulates the block on the device, in float32, averaged over heads and layers.

Exact probabilities need each row's normaliser over *all* keys. Its log (the log-sum-exp of a
row's scores over the image and the text keys) comes from a fused attention kernel that returns
it beside its output (PyTorch's memory-efficient attention on CUDA, its flash attention on a
CPU), so the (image + text)^2 scores of a layer (about 1 GB for FLUX.1 at 1024 px in bfloat16)
are never written out: the kernel multiplies the layer's own half-precision queries and keys
with float32 accumulation, as a float32 matrix product of the same numbers does. Only the
image-to-text scores are formed, in float32, in query chunks whose scores stay under
``chunk_bytes``. Materialising and reducing the full scores in float32 made the capture cost
more than the transformer itself on an H200 (SD 3.5 Medium: 22.5 s per edit against 9.5 s
without capture). ``normaliser="text_keys"`` instead renormalises over the text keys alone (a
softmax over the text scores), which also skips the image keys' projection.

Layers: every joint layer by default -- SD 3.x's ``transformer_blocks.i.attn`` (not the
image-only ``attn2`` of 3.5's dual-attention blocks); FLUX.1's double-stream
``transformer_blocks.i.attn`` then single-stream ``single_transformer_blocks.i.attn``. A subset
is chosen by index into that list (:func:`joint_attention_layers`), in execution order.

As in :mod:`instdiffedit.attention`, the capture works inside CUDA graphs
(:mod:`instdiffedit.graphs`): before each transformer call the store selects a preallocated
buffer for the call's rows and text length; the first chosen layer writes its maps into it in
place and each later layer adds its own (the order is fixed by the model), and
:meth:`JointAttentionStore.take` divides by the layer count outside the graph. The capturing
processors and their store are made once per transformer and layer set and reused by every
later capture (graphs are keyed by the processors and a compiled transformer guards on them),
and the original processors come back when the context exits, also on errors.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from diffusers.models.embeddings import apply_rotary_emb

from instdiffedit.graphs import is_graph_safe, unet_runner

Normaliser = Literal["all_keys", "text_keys"]
NORMALISERS: tuple[str, ...] = ("all_keys", "text_keys")

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Upper bound on one query chunk's float32 image-to-text scores (all rows and heads of one
layer). FLUX.1 [dev] at 1024 px (512 text tokens): 5461 image queries per chunk at batch 1, so
its 4096 take one chunk."""

JointTransformer = SD3Transformer2DModel | FluxTransformer2DModel
RotaryEmbedding = tuple[torch.Tensor, torch.Tensor]
# (attn, image tokens, text tokens, rotary embedding, with image keys) -> image queries, image
# keys (None when not asked for) and text keys, each rows x heads x tokens x head width.
Projections = Callable[..., tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]


class JointAttentionStore:
    """One transformer call's image-to-text attention, averaged over heads and the ``layers`` chosen.

    ``take()`` returns ``R x h x w x L`` (R recorded rows, ``grid`` = (h, w) image tokens, L text
    tokens) in float32, once per call.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        layers: int,
        conditional_only: bool = True,
        normaliser: Normaliser = "all_keys",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if normaliser not in NORMALISERS:
            raise ValueError(f"Unknown normaliser {normaliser!r}; expected one of: {', '.join(NORMALISERS)}.")
        self.grid = grid
        self.layers = layers
        self.conditional_only = conditional_only
        self.normaliser = normaliser
        self.chunk_bytes = chunk_bytes
        self._buffers: dict[tuple, torch.Tensor] = {}
        self.total: torch.Tensor | None = None  # R x (h w) x L: the current call's sum over layers
        self._unread = False

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def needs_image_keys(self) -> bool:
        return self.normaliser == "all_keys"

    def prepare(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *conditioning: torch.Tensor) -> None:
        """Before a transformer call: select (allocating once) the buffer for its rows and text length."""
        rows = sample.shape[0] // 2 if self.conditional_only else sample.shape[0]
        key = (rows, encoder_hidden_states.shape[1], sample.device)
        total = self._buffers.get(key)
        if total is None:
            total = torch.zeros(rows, self.image_tokens, key[1], dtype=torch.float32, device=sample.device)
            self._buffers[key] = total
        self.total = total
        self._unread = True

    @torch.no_grad()
    def record(self, layer_index: int, query: torch.Tensor, image_key: torch.Tensor | None, text_key: torch.Tensor) -> None:
        """Write (the first layer) or add (the others) one layer's head-averaged image-query -> text-key probabilities.

        ``query``/``image_key``: rows x heads x (h * w) x d; ``text_key``: rows x heads x L x d.
        """
        rows, heads, n_image, width = query.shape
        chunk = query_chunk(self.chunk_bytes, rows * heads * text_key.shape[2])
        scale = width**-0.5  # the kernels' default
        text_key_t = text_key.float().transpose(-1, -2)
        log_norm = None if image_key is None else log_normaliser(query, torch.cat([image_key, text_key], dim=2), scale)
        layer = torch.empty(rows, n_image, text_key.shape[2], dtype=torch.float32, device=query.device)
        for start in range(0, n_image, chunk):
            text_scores = (query[:, :, start : start + chunk].float() * scale) @ text_key_t
            if log_norm is None:
                probs = text_scores.softmax(dim=-1)
            else:
                probs = (text_scores - log_norm[:, :, start : start + chunk, None]).exp()
            layer[:, start : start + chunk] = probs.mean(dim=1)
        if layer_index == 0:
            self.total.copy_(layer)
        else:
            self.total.add_(layer)

    def reset(self) -> None:
        """Forget a call whose maps were not taken (e.g. one interrupted by an error)."""
        self._unread = False

    def take(self) -> torch.Tensor:
        """The latest call's maps; an error if no transformer call came since the last ``take()``."""
        if not self._unread:
            raise RuntimeError("No joint attention was recorded: was the transformer called inside the capture context?")
        self._unread = False
        return (self.total / self.layers).unflatten(1, self.grid)


def log_normaliser(query: torch.Tensor, keys: torch.Tensor, scale: float) -> torch.Tensor:
    """Each query row's log-sum-exp of ``scale * q . k`` over ``keys`` (rows x heads x queries, float32).

    From a fused attention kernel's log-sum-exp output (its attention output, with the keys as
    values, is discarded): the scores are never materialised.
    """
    query, keys = query.contiguous(), keys.contiguous()
    if query.device.type == "cuda":
        _, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(query, keys, keys, None, True, scale=scale)
        return lse[..., : query.shape[2]]  # the kernel pads the query axis to its block size
    if query.device.type == "cpu":
        _, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, keys, keys, scale=scale)
        return lse
    raise ValueError(f"Exact joint-attention probabilities need a CUDA or CPU device, not {query.device.type}; use normaliser='text_keys'.")


def query_chunk(chunk_bytes: int, scores_per_query: int) -> int:
    """Image queries per chunk so that a chunk's float32 scores fit ``chunk_bytes`` (at least 1)."""
    return max(1, chunk_bytes // (4 * scores_per_query))


class JointCapturingProcessor:
    """Runs the wrapped processor unchanged, then hands the layer's queries and keys to a store, as layer ``layer_index``."""

    def __init__(self, inner: object, store: JointAttentionStore, projections: Projections, layer_index: int) -> None:
        self.inner = inner
        self.store = store
        self.projections = projections
        self.layer_index = layer_index

    @property
    def graph_safe(self) -> bool:
        """The store writes on the device only; graph-safe whenever the wrapped processor is."""
        return is_graph_safe(self.inner)

    # The signature of diffusers' joint processors: FluxAttention forwards only the keyword
    # arguments that its processor's __call__ names.
    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: RotaryEmbedding | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is not None:
            raise ValueError("JointCapturingProcessor supports unmasked joint attention only.")
        rotary = () if image_rotary_emb is None else (image_rotary_emb,)
        output = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *rotary)
        if self.store.conditional_only:
            half = hidden_states.shape[0] // 2
            hidden_states = hidden_states[half:]
            encoder_hidden_states = None if encoder_hidden_states is None else encoder_hidden_states[half:]
        with torch.no_grad():
            q, k_image, k_text = self.projections(
                attn, hidden_states, encoder_hidden_states, image_rotary_emb, self.store.image_tokens,
                self.store.needs_image_keys,
            )
        self.store.record(self.layer_index, q, k_image, k_text)
        return output


def _heads_first(x: torch.Tensor, width: int) -> torch.Tensor:
    """``rows x tokens x (heads * width)`` -> ``rows x heads x tokens x width``."""
    return x.unflatten(-1, (-1, width)).transpose(1, 2)


def _check_image_tokens(found: int, expected: int) -> None:
    if found != expected:
        raise ValueError(
            f"The layer sees {found} image tokens but the capture grid holds {expected}; "
            "pass the transformer's token grid for this latent size (see token_grid)."
        )


def _sd3_projections(attn, image, text, rotary, n_image, with_image_keys):
    """SD 3.x (``JointAttnProcessor2_0``): separate image and text projections, optional qk-norms."""
    _check_image_tokens(image.shape[1], n_image)
    width = attn.to_k.out_features // attn.heads

    def norm(module, x):
        return x if module is None else module(x)

    query = norm(attn.norm_q, _heads_first(attn.to_q(image), width))
    image_key = norm(attn.norm_k, _heads_first(attn.to_k(image), width)) if with_image_keys else None
    text_key = norm(attn.norm_added_k, _heads_first(attn.add_k_proj(text), width))
    return query, image_key, text_key


def _flux_double_projections(attn, image, text, rotary, n_image, with_image_keys):
    """FLUX.1 double-stream blocks: separate projections and RMS norms; rotary over [text, image]."""
    _check_image_tokens(image.shape[1], n_image)
    n_text = text.shape[1]
    image_rotary, text_rotary = _split_rotary(rotary, n_text)
    query = _flux_heads(attn, attn.to_q, attn.norm_q, image, image_rotary)
    image_key = _flux_heads(attn, attn.to_k, attn.norm_k, image, image_rotary) if with_image_keys else None
    text_key = _flux_heads(attn, attn.add_k_proj, attn.norm_added_k, text, text_rotary)
    return query, image_key, text_key


def _flux_single_projections(attn, tokens, text, rotary, n_image, with_image_keys):
    """FLUX.1 single-stream blocks: one projection of the concatenated [text, image] tokens."""
    n_text = tokens.shape[1] - n_image
    if n_text <= 0:
        raise ValueError(f"The layer sees {tokens.shape[1]} tokens, not more than the grid's {n_image} image tokens.")
    image_rotary, text_rotary = _split_rotary(rotary, n_text)
    image, text = tokens[:, n_text:], tokens[:, :n_text]
    query = _flux_heads(attn, attn.to_q, attn.norm_q, image, image_rotary)
    image_key = _flux_heads(attn, attn.to_k, attn.norm_k, image, image_rotary) if with_image_keys else None
    text_key = _flux_heads(attn, attn.to_k, attn.norm_k, text, text_rotary)
    return query, image_key, text_key


def _flux_heads(attn, linear, norm, tokens: torch.Tensor, rotary: RotaryEmbedding) -> torch.Tensor:
    """FluxAttnProcessor's order: project, split heads, RMS-norm, rotate; then heads first."""
    x = norm(linear(tokens).unflatten(-1, (-1, attn.head_dim)))  # rows x tokens x heads x width
    return apply_rotary_emb(x, rotary, sequence_dim=1).transpose(1, 2)


def _split_rotary(rotary: RotaryEmbedding | None, n_text: int) -> tuple[RotaryEmbedding, RotaryEmbedding]:
    """FLUX's (cos, sin) over the [text, image] sequence -> the image part and the text part."""
    if rotary is None:
        raise ValueError("FLUX attention was called without its rotary embedding.")
    cos, sin = rotary
    return (cos[n_text:], sin[n_text:]), (cos[:n_text], sin[:n_text])


@dataclass(frozen=True)
class _Architecture:
    layers: tuple[tuple[re.Pattern[str], Projections], ...]  # in execution order
    packing: int  # image latents per token side beyond the transformer's own patch size


_ARCHITECTURES: dict[type, _Architecture] = {
    SD3Transformer2DModel: _Architecture(
        layers=((re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$"), _sd3_projections),),
        packing=1,
    ),
    FluxTransformer2DModel: _Architecture(
        layers=(
            (re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$"), _flux_double_projections),
            (re.compile(r"^single_transformer_blocks\.(\d+)\.attn\.processor$"), _flux_single_projections),
        ),
        packing=2,  # the FLUX pipelines pack 2 x 2 latent patches into one token
    ),
}


def _architecture(transformer: JointTransformer) -> _Architecture:
    for cls, architecture in _ARCHITECTURES.items():
        if isinstance(transformer, cls):
            return architecture
    names = ", ".join(cls.__name__ for cls in _ARCHITECTURES)
    raise TypeError(f"Joint-attention capture supports {names}, not {type(transformer).__name__}.")


def _joint_layers(transformer: JointTransformer) -> list[tuple[str, Projections]]:
    layers = []
    for pattern, projections in _architecture(transformer).layers:
        matches = [(int(m[1]), name) for name in transformer.attn_processors if (m := pattern.match(name))]
        layers += [(name, projections) for _, name in sorted(matches)]
    return layers


def joint_attention_layers(transformer: JointTransformer) -> list[str]:
    """Processor names of the transformer's joint-attention layers, in execution order.

    The ``layers`` indices of :func:`capture_joint_attention` index this list: for FLUX.1 [dev]
    0-18 are the double-stream blocks and 19-56 the single-stream ones; for SD 3.5 medium 0-23
    and large 0-37.
    """
    return [name for name, _ in _joint_layers(transformer)]


def token_grid(transformer: JointTransformer, latent_size: tuple[int, int]) -> tuple[int, int]:
    """The transformer's image-token grid for latents of ``latent_size`` (64 x 64 at 1024 px)."""
    side = transformer.config.patch_size * _architecture(transformer).packing
    height, width = latent_size
    if height % side or width % side:
        raise ValueError(f"Latent size {latent_size} is not divisible by the token side {side}.")
    return height // side, width // side


@contextmanager
def capture_joint_attention(
    transformer: JointTransformer,
    grid: tuple[int, int],
    *,
    layers: Sequence[int] | None = None,
    conditional_only: bool = True,
    normaliser: Normaliser = "all_keys",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[JointAttentionStore]:
    """Capture image-to-text joint attention at the token ``grid`` while the context is open.

    ``layers``: indices into :func:`joint_attention_layers` (default: all). With
    ``conditional_only`` the batch is taken to be laid out for classifier-free guidance,
    ``[uncond | cond]``, and only the second half is recorded (FLUX.1 [dev] runs without CFG:
    pass False). ``normaliser``: ``"all_keys"`` (exact probabilities) or ``"text_keys"``.
    """
    original = transformer.attn_processors
    store, wrapped = _capturing_processors(transformer, original, grid, layers, conditional_only, normaliser, chunk_bytes)
    store.reset()
    # Calls through the transformer's runner (the diffusion steps') and direct calls both prepare the store.
    handles = [
        unet_runner(transformer).listen(store.prepare),
        transformer.register_forward_pre_hook(lambda _, args, kwargs: store.prepare(*_transformer_inputs(args, kwargs)), with_kwargs=True),
    ]
    transformer.set_attn_processor({**original, **wrapped})
    try:
        yield store
    finally:
        transformer.set_attn_processor(dict(original))
        for handle in handles:
            handle.remove()


def _transformer_inputs(args: tuple, kwargs: dict) -> tuple[torch.Tensor, None, torch.Tensor]:
    """``(hidden_states, None, encoder_hidden_states)`` of a direct SD3/FLUX transformer call (rows and text length are what count)."""
    named = dict(zip(("hidden_states", "encoder_hidden_states"), args)) | kwargs
    return named["hidden_states"], None, named["encoder_hidden_states"]


_Capture = tuple[JointAttentionStore, dict[str, JointCapturingProcessor]]
_CAPTURES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, _Capture]] = weakref.WeakKeyDictionary()


def _capturing_processors(
    transformer: JointTransformer,
    original: dict[str, object],
    grid: tuple[int, int],
    layers: Sequence[int] | None,
    conditional_only: bool,
    normaliser: Normaliser,
    chunk_bytes: int,
) -> _Capture:
    """The store and wrapping processors for these layers, the same objects every time.

    Made anew only when the layers' own processors have changed since (e.g. a pipeline
    installed others), so a wrapper never runs a stale processor.
    """
    chosen = _chosen_layers(_joint_layers(transformer), layers)
    key = (tuple(grid), tuple(name for name, _ in chosen), conditional_only, normaliser, chunk_bytes)
    per_model = _CAPTURES.setdefault(transformer, {})
    cached = per_model.get(key)
    if cached is None or any(cached[1][name].inner is not original[name] for name, _ in chosen):
        store = JointAttentionStore(tuple(grid), len(chosen), conditional_only, normaliser, chunk_bytes)
        cached = store, {
            name: JointCapturingProcessor(original[name], store, proj, index) for index, (name, proj) in enumerate(chosen)
        }
        per_model[key] = cached
    return cached


def _chosen_layers(
    available: list[tuple[str, Projections]], layers: Sequence[int] | None
) -> list[tuple[str, Projections]]:
    if layers is None:
        return available
    if not layers:
        raise ValueError("No joint-attention layer chosen: pass layer indices, or None for all.")
    bad = [i for i in layers if not 0 <= i < len(available)]
    if bad:
        raise ValueError(f"Joint-attention layer indices {bad} are out of range: the transformer has {len(available)} (0-{len(available) - 1}).")
    return [available[i] for i in sorted(set(layers))]
