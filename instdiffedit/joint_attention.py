"""Text-attention capture for joint-attention transformers: SD 3.x (MMDiT) and FLUX.1.

In these models image and text tokens attend together: each layer runs one softmax over the
image keys and the text keys. What InstDiffEdit reads is the image-query -> text-key block of
those probabilities, one map per text token at the transformer's token grid (H/16 x W/16 for
both families), accumulated on the device in float32, averaged over heads and layers.

The capture costs no extra pass over the layer: a capturing processor *is* the layer's attention.
It computes the layer as diffusers' own processor does (the same projections, qk-norms and, for
FLUX.1, rotary embeddings, in the same order), but through an attention kernel that also returns
each query row's log-sum-exp over *all* keys (PyTorch's flash attention on CUDA in half
precision and on a CPU, its memory-efficient attention on CUDA in float32: the kernels
``scaled_dot_product_attention`` itself picks for these inputs, so the layer's output is the
model's own, bit for bit where the same kernel runs). That log-sum-exp is the exact normaliser of
every image row; only the image-to-text scores are then formed, from the layer's own queries and
text keys, in float32, in query chunks whose scores stay under ``chunk_bytes``, and
``exp(score - lse)`` are the exact probabilities. ``normaliser="text_keys"`` instead renormalises
over the text keys alone (a softmax over the text scores). Forming those scores is the capture's
whole cost beyond the layer (on FLUX.1 [dev] at 1024 px, 512 text columns of float32 scores per
layer), so a caller that reads only the first columns (the prompt's tokens; padding after them)
names how many: with ``columns`` the store forms and keeps only those (their probabilities are
the same, the log-sum-exp covers every key), rounded up to a multiple of :data:`COLUMN_BUCKET` so
that prompts of different lengths share their CUDA graphs. Earlier designs projected the queries
and keys a second time and ran one more attention pass for the normaliser (+36 % per edit on
SD 3.5 Medium, +63 % on FLUX.1 [dev]); before that, materialising the full float32 scores cost
more than the transformer itself.

Layers: every joint layer by default -- SD 3.x's ``transformer_blocks.i.attn`` (not the
image-only ``attn2`` of 3.5's dual-attention blocks); FLUX.1's double-stream
``transformer_blocks.i.attn`` then single-stream ``single_transformer_blocks.i.attn``. A subset
is chosen by index into that list (:func:`joint_attention_layers`), in execution order. A chosen
layer must run diffusers' own processor for its family (``JointAttnProcessor2_0``,
``FluxAttnProcessor``, unfused projections), since the capture computes that processor's work;
any other is refused with its name rather than replaced.

As in :mod:`instdiffedit.attention`, the capture works inside CUDA graphs
(:mod:`instdiffedit.fast_paths`): before each transformer call the store selects a preallocated
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from diffusers.models.attention_processor import JointAttnProcessor2_0
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from instdiffedit.fast_paths import denoiser_runner

Normaliser = Literal["all_keys", "text_keys"]
NORMALISERS: tuple[str, ...] = ("all_keys", "text_keys")

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Upper bound on one query chunk's float32 image-to-text scores (all rows and heads of one
layer). FLUX.1 [dev] at 1024 px (512 text tokens): 5461 image queries per chunk at batch 1, so
its 4096 take one chunk."""

COLUMN_BUCKET = 64
"""``columns`` is rounded up to a multiple of this: each distinct count is another shape, so another graph capture."""

JointTransformer = SD3Transformer2DModel | FluxTransformer2DModel
RotaryEmbedding = tuple[torch.Tensor, torch.Tensor]


class JointAttentionStore:
    """One transformer call's image-to-text attention, averaged over heads and the ``layers`` chosen.

    ``take()`` returns ``R x h x w x L`` (R recorded rows, ``grid`` = (h, w) image tokens, L text
    tokens) in float32, once per call. With ``columns`` L is at most ``columns``: the first text
    columns alone (``all_keys`` only: the ``text_keys`` softmax needs every text score).
    """

    def __init__(
        self,
        grid: tuple[int, int],
        layers: int,
        conditional_only: bool = True,
        normaliser: Normaliser = "all_keys",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        columns: int | None = None,
    ) -> None:
        if normaliser not in NORMALISERS:
            raise ValueError(f"Unknown normaliser {normaliser!r}; expected one of: {', '.join(NORMALISERS)}.")
        if columns is not None and columns < 1:
            raise ValueError(f"columns must be at least 1 (or None for every text column), got {columns}.")
        if columns is not None and normaliser == "text_keys":
            raise ValueError("normaliser='text_keys' renormalises over every text column: leave columns at None.")
        self.grid = grid
        self.layers = layers
        self.conditional_only = conditional_only
        self.normaliser = normaliser
        self.chunk_bytes = chunk_bytes
        self.columns = columns
        self._buffers: dict[tuple, torch.Tensor] = {}
        self.total: torch.Tensor | None = None  # R x (h w) x L: the current call's sum over layers
        self._unread = False

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def prepare(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *conditioning: torch.Tensor) -> None:
        """Before a transformer call: select (allocating once) the buffer for its rows and text length."""
        rows = sample.shape[0] // 2 if self.conditional_only else sample.shape[0]
        text = encoder_hidden_states.shape[1]
        key = (rows, text if self.columns is None else min(text, self.columns), sample.device)
        total = self._buffers.get(key)
        if total is None:
            total = torch.zeros(rows, self.image_tokens, key[1], dtype=torch.float32, device=sample.device)
            self._buffers[key] = total
        self.total = total
        self._unread = True

    @torch.no_grad()
    def record(self, layer_index: int, query: torch.Tensor, text_key: torch.Tensor, log_norm: torch.Tensor) -> None:
        """Write (the first layer) or add (the others) one layer's head-averaged image-query -> text-key probabilities.

        ``query``: the layer's image queries, rows x heads x (h * w) x d; ``text_key``: its text
        keys, rows x heads x L x d (only the store's columns are read); ``log_norm``: each image
        query's log-sum-exp over all keys, rows x heads x (h * w), from the layer's own attention kernel.
        """
        text_key = text_key[:, :, : self.total.shape[-1]]
        rows, heads, n_image, width = query.shape
        chunk = query_chunk(self.chunk_bytes, rows * heads * text_key.shape[2])
        scale = width**-0.5  # the kernels' default
        text_key_t = text_key.float().transpose(-1, -2)
        layer = torch.empty(rows, n_image, text_key.shape[2], dtype=torch.float32, device=query.device)
        for start in range(0, n_image, chunk):
            text_scores = (query[:, :, start : start + chunk].float() * scale) @ text_key_t
            if self.normaliser == "text_keys":
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


def attention_with_log_normaliser(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention (rows x heads x tokens x width, the default scale) and each query row's log-sum-exp of its scores (float32).

    Through the fused kernel ``scaled_dot_product_attention`` picks for such inputs: flash
    attention on CUDA in half precision and on a CPU, memory-efficient attention on CUDA
    otherwise; neither writes the scores out.
    """
    if query.device.type == "cuda":
        if query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256:
            output, lse, *_ = torch.ops.aten._scaled_dot_product_flash_attention(query, key, value)
            return output, lse
        output, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, None, True)
        return output, lse[..., : query.shape[2]]  # the kernel pads the query axis to its block size
    if query.device.type == "cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value)
    raise ValueError(f"Joint-attention capture needs a CUDA or CPU device, not {query.device.type}.")


def query_chunk(chunk_bytes: int, scores_per_query: int) -> int:
    """Image queries per chunk so that a chunk's float32 scores fit ``chunk_bytes`` (at least 1)."""
    return max(1, chunk_bytes // (4 * scores_per_query))


@dataclass(frozen=True)
class JointQKV:
    """A joint layer's queries, keys and values (rows x heads x tokens x width) and where its image tokens sit."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    image: slice
    text: slice


class JointLayer(Protocol):
    """What a family's joint processor does, split around its attention kernel."""

    processor: type
    """diffusers' processor class whose work this reproduces."""

    def qkv(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        image_rotary_emb: RotaryEmbedding | None,
        n_image: int,
    ) -> JointQKV: ...

    def output(
        self, attn: torch.nn.Module, attended: torch.Tensor, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...


class JointCapturingProcessor:
    """The layer's own attention, with its image-to-text probabilities handed to a store as layer ``layer_index``."""

    graph_safe = True
    """Every effect (the attention and the store's writes) is on the device."""

    def __init__(self, layer: JointLayer, store: JointAttentionStore, layer_index: int) -> None:
        self.layer = layer
        self.store = store
        self.layer_index = layer_index

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
        qkv = self.layer.qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb, self.store.image_tokens)
        attended, log_norm = attention_with_log_normaliser(qkv.query, qkv.key, qkv.value)
        recorded = slice(hidden_states.shape[0] // 2, None) if self.store.conditional_only else slice(None)
        self.store.record(
            self.layer_index,
            qkv.query[recorded, :, qkv.image],
            qkv.key[recorded, :, qkv.text],
            log_norm[recorded, :, qkv.image],
        )
        return self.layer.output(attn, attended, hidden_states, encoder_hidden_states)


def _check_image_tokens(found: int, expected: int) -> None:
    if found != expected:
        raise ValueError(
            f"The layer sees {found} image tokens but the capture grid holds {expected}; "
            "pass the transformer's token grid for this latent size (see token_grid)."
        )


def _heads_first(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``rows x tokens x (heads * width)`` -> ``rows x heads x tokens x width``."""
    return x.view(x.shape[0], -1, heads, x.shape[-1] // heads).transpose(1, 2)


def _norm(module: torch.nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if module is None else module(x)


class SD3JointLayer:
    """``JointAttnProcessor2_0`` (SD 3.x): separate image and text projections, optional qk-norms; [image, text]."""

    processor = JointAttnProcessor2_0

    def qkv(self, attn, hidden_states, encoder_hidden_states, image_rotary_emb, n_image) -> JointQKV:
        _check_image_tokens(hidden_states.shape[1], n_image)
        heads = attn.heads
        query = _norm(attn.norm_q, _heads_first(attn.to_q(hidden_states), heads))
        key = _norm(attn.norm_k, _heads_first(attn.to_k(hidden_states), heads))
        value = _heads_first(attn.to_v(hidden_states), heads)
        text_query = _norm(attn.norm_added_q, _heads_first(attn.add_q_proj(encoder_hidden_states), heads))
        text_key = _norm(attn.norm_added_k, _heads_first(attn.add_k_proj(encoder_hidden_states), heads))
        text_value = _heads_first(attn.add_v_proj(encoder_hidden_states), heads)
        return JointQKV(
            torch.cat([query, text_query], dim=2),
            torch.cat([key, text_key], dim=2),
            torch.cat([value, text_value], dim=2),
            image=slice(0, n_image),
            text=slice(n_image, None),
        )

    def output(self, attn, attended, hidden_states, encoder_hidden_states):
        rows, n_image = hidden_states.shape[:2]
        attended = attended.transpose(1, 2).reshape(rows, -1, attended.shape[1] * attended.shape[3]).to(hidden_states.dtype)
        image, text = attended[:, :n_image], attended[:, n_image:]
        if not attn.context_pre_only:
            text = attn.to_add_out(text)
        return attn.to_out[1](attn.to_out[0](image)), text


class FluxJointLayer:
    """``FluxAttnProcessor`` (FLUX.1): RMS qk-norms and rotary embeddings over [text, image].

    Double-stream blocks project image and text separately; single-stream blocks get the
    concatenated [text, image] tokens and no text states.
    """

    processor = FluxAttnProcessor

    def qkv(self, attn, hidden_states, encoder_hidden_states, image_rotary_emb, n_image) -> JointQKV:
        if getattr(attn, "fused_projections", False):
            raise ValueError("Joint-attention capture needs FLUX's unfused projections: call unfuse_qkv_projections() first.")
        if image_rotary_emb is None:
            raise ValueError("FLUX attention was called without its rotary embedding.")
        width = attn.head_dim
        query = attn.norm_q(attn.to_q(hidden_states).unflatten(-1, (-1, width)))
        key = attn.norm_k(attn.to_k(hidden_states).unflatten(-1, (-1, width)))
        value = attn.to_v(hidden_states).unflatten(-1, (-1, width))
        if encoder_hidden_states is not None:
            _check_image_tokens(hidden_states.shape[1], n_image)
            text_query = attn.norm_added_q(attn.add_q_proj(encoder_hidden_states).unflatten(-1, (-1, width)))
            text_key = attn.norm_added_k(attn.add_k_proj(encoder_hidden_states).unflatten(-1, (-1, width)))
            text_value = attn.add_v_proj(encoder_hidden_states).unflatten(-1, (-1, width))
            query = torch.cat([text_query, query], dim=1)
            key = torch.cat([text_key, key], dim=1)
            value = torch.cat([text_value, value], dim=1)
        n_text = query.shape[1] - n_image
        if n_text <= 0:
            raise ValueError(f"The layer sees {query.shape[1]} tokens, not more than the grid's {n_image} image tokens.")
        query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
        key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        return JointQKV(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), image=slice(n_text, None), text=slice(0, n_text))

    def output(self, attn, attended, hidden_states, encoder_hidden_states):
        attended = attended.transpose(1, 2).flatten(2, 3).to(hidden_states.dtype)
        if encoder_hidden_states is None:
            return attended
        text, image = attended.split_with_sizes([encoder_hidden_states.shape[1], hidden_states.shape[1]], dim=1)
        image = attn.to_out[1](attn.to_out[0](image.contiguous()))
        return image, attn.to_add_out(text.contiguous())


@dataclass(frozen=True)
class _Architecture:
    layers: tuple[tuple[re.Pattern[str], JointLayer], ...]  # in execution order
    packing: int  # image latents per token side beyond the transformer's own patch size


_ARCHITECTURES: dict[type, _Architecture] = {
    SD3Transformer2DModel: _Architecture(
        layers=((re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$"), SD3JointLayer()),),
        packing=1,
    ),
    FluxTransformer2DModel: _Architecture(
        layers=(
            (re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$"), FluxJointLayer()),
            (re.compile(r"^single_transformer_blocks\.(\d+)\.attn\.processor$"), FluxJointLayer()),
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


def _joint_layers(transformer: JointTransformer) -> list[tuple[str, JointLayer]]:
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
    columns: int | None = None,
) -> Iterator[JointAttentionStore]:
    """Capture image-to-text joint attention at the token ``grid`` while the context is open.

    ``layers``: indices into :func:`joint_attention_layers` (default: all). With
    ``conditional_only`` the batch is taken to be laid out for classifier-free guidance,
    ``[uncond | cond]``, and only the second half is recorded (FLUX.1 [dev] runs without CFG:
    pass False). ``normaliser``: ``"all_keys"`` (exact probabilities) or ``"text_keys"``.
    ``columns``: the maps must hold at least the first ``columns`` text columns (None: all); the
    store keeps them rounded up to a multiple of :data:`COLUMN_BUCKET` (see the module), or all of
    them for ``text_keys``.
    """
    original = transformer.attn_processors
    kept = None if columns is None or normaliser == "text_keys" else -(-columns // COLUMN_BUCKET) * COLUMN_BUCKET
    store, wrapped = _capturing_processors(transformer, original, grid, layers, conditional_only, normaliser, chunk_bytes, kept)
    store.reset()
    # Calls through the transformer's runner (the diffusion steps') and direct calls both prepare the store.
    handles = [
        denoiser_runner(transformer).listen(store.prepare),
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
    columns: int | None,
) -> _Capture:
    """The store and capturing processors for these layers, the same objects every time.

    Each chosen layer must run diffusers' own processor for its family: the capture computes
    that processor's work, so another one (an IP-adapter's, a user's) is refused, not replaced.
    """
    chosen = _chosen_layers(_joint_layers(transformer), layers)
    foreign = [f"{name} ({type(original[name]).__name__})" for name, layer in chosen if type(original[name]) is not layer.processor]
    if foreign:
        raise TypeError(
            f"Joint-attention capture computes diffusers' own joint processors; these layers run others: {', '.join(foreign)}. "
            "Install diffusers' default processor on them or choose other layers (attention_layers)."
        )
    key = (tuple(grid), tuple(name for name, _ in chosen), conditional_only, normaliser, chunk_bytes, columns)
    per_model = _CAPTURES.setdefault(transformer, {})
    cached = per_model.get(key)
    if cached is None:
        store = JointAttentionStore(tuple(grid), len(chosen), conditional_only, normaliser, chunk_bytes, columns)
        cached = store, {name: JointCapturingProcessor(layer, store, index) for index, (name, layer) in enumerate(chosen)}
        per_model[key] = cached
    return cached


def _chosen_layers(available: list[tuple[str, JointLayer]], layers: Sequence[int] | None) -> list[tuple[str, JointLayer]]:
    if layers is None:
        return available
    if not layers:
        raise ValueError("No joint-attention layer chosen: pass layer indices, or None for all.")
    bad = [i for i in layers if not 0 <= i < len(available)]
    if bad:
        raise ValueError(f"Joint-attention layer indices {bad} are out of range: the transformer has {len(available)} (0-{len(available) - 1}).")
    return [available[i] for i in sorted(set(layers))]
