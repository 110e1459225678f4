"""Token columns of the edit text in SD 3.x's and FLUX.1's text sequences, and the reference map.

InstDiffEdit inverts the start token's map (in SD 1.x the start token soaks up the attention of
the background, so its inverse highlights the object). T5 has no start token, so the map to
invert is a named *reference*, the mean of the maps of some columns:

- ``"clip_bos"``: CLIP's start token, where the sequence holds CLIP tokens (SD 3.x, SD 1.x,
  SDXL). A prompt-independent sink, exactly the paper's token.
- ``"eos"``: T5's end-of-sequence token ``</s>``, right after the text.
- ``"pad"``: T5's first padding token, right after ``</s>`` (its input is the same for every
  prompt, the nearest T5 has to a content-free sink).
- ``"mean"``: every column that holds a token of the text, special tokens included, padding
  excluded (CLIP: start, words, end; T5: words, ``</s>``).

The sequences, as diffusers' pipelines build them (``prompt_embeds`` columns):

- SD 3.x: 77 CLIP columns, then ``max_sequence_length`` (256) T5 columns (zeros without T5). CLIP-L's and
  CLIP-G's hidden states are concatenated along the channels (both use the same BPE, so column
  i is the same token for both) and zero-padded to T5's width. Column 0 is CLIP's start token,
  1..n the text's CLIP tokens, n + 1 CLIP's end token, then padding; column 77 + j is T5's
  j-th token, the text's m tokens first, ``</s>`` at 77 + m, padding after.
- FLUX.1: T5 columns only (``max_sequence_length`` 512 for [dev], 256 for [schnell]): the text's
  m tokens, ``</s>`` at m, padding after; CLIP-L only gives the pooled embedding, so there is no
  start token and no ``"clip_bos"``.

Word maps in SD 3.x: a word's tokens appear twice, in the CLIP part and in the T5 part, and both
are keys of the same softmax. By default (``words_from="all"``) a word's span holds both sets of
columns, so its map is the mean over all the attention the word receives: the model was trained
with each encoder dropped independently (SD 3 paper), so either part alone can carry a word,
and which one dominates varies by layer; using both needs no guess. ``"clip"`` or ``"t5"``
restricts the spans to one encoder's columns (word maps are min-max normalised afterwards, so
the mean's scale does not matter).

Defaults (:data:`SD3_REFERENCE`, :data:`FLUX_REFERENCE`) are the paper's token where it exists
and the first padding token otherwise; they are provisional until measured on a trained DiT (the
toy DiT, ``model=toy_dit``, has CLIP tokens and no T5: it can measure ``clip_bos`` and ``mean`` only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from instdiffedit.tokens import TokenLayout, align_words

Encoder = Literal["clip", "t5"]
Reference = Literal["clip_bos", "eos", "pad", "mean"]
REFERENCES: tuple[str, ...] = ("clip_bos", "eos", "pad", "mean")
WORDS_FROM: tuple[str, ...] = ("all", "clip", "t5")

SD3_REFERENCE: Reference = "clip_bos"
FLUX_REFERENCE: Reference = "pad"

CLIP_LENGTH = 77
SD3_T5_LENGTH = 256
"""``max_sequence_length`` of diffusers' SD 3.x pipelines."""
FLUX_T5_LENGTH = 512
"""``max_sequence_length`` of diffusers' FLUX.1 pipelines ([dev]; [schnell] is run with 256)."""

# Special tokens before the text: CLIP's start token; T5 has none. Both append an end token.
_START_TOKENS: dict[str, int] = {"clip": 1, "t5": 0}


@dataclass(frozen=True)
class TextPart:
    """One text encoder's padded tokens in the denoiser's text sequence: ``length`` columns from ``offset``."""

    encoder: Encoder
    tokenizer: PreTrainedTokenizerBase
    offset: int
    length: int


def clip_parts(tokenizer: PreTrainedTokenizerBase) -> tuple[TextPart, ...]:
    """SD 1.x/2.x and SDXL (whose two CLIP encoders are concatenated along the channels): 77 CLIP columns."""
    return (TextPart("clip", tokenizer, 0, CLIP_LENGTH),)


def sd3_parts(
    clip_tokenizer: PreTrainedTokenizerBase,
    t5_tokenizer: PreTrainedTokenizerBase | None,
    max_sequence_length: int = SD3_T5_LENGTH,
) -> tuple[TextPart, ...]:
    """SD 3.x: 77 CLIP columns (CLIP-L and CLIP-G side by side), then the T5 columns.

    Without T5 (``t5_tokenizer`` None: the pipeline loaded with ``text_encoder_3=None``, as
    diffusers documents it) the T5 columns are zero vectors that hold no token: the text is
    CLIP's part alone, and the zero columns stay keys of the joint softmax as the model sees them.
    """
    clip = TextPart("clip", clip_tokenizer, 0, CLIP_LENGTH)
    if t5_tokenizer is None:
        return (clip,)
    return (clip, TextPart("t5", t5_tokenizer, CLIP_LENGTH, max_sequence_length))


def flux_parts(t5_tokenizer: PreTrainedTokenizerBase, max_sequence_length: int = FLUX_T5_LENGTH) -> tuple[TextPart, ...]:
    """FLUX.1: the T5 columns alone."""
    return (TextPart("t5", t5_tokenizer, 0, max_sequence_length),)


@dataclass(frozen=True)
class _PartTokens:
    part: TextPart
    words: tuple[str, ...]
    spans: tuple[tuple[int, ...], ...]
    end: int  # column of the part's end token

    @property
    def columns(self) -> tuple[int, ...]:
        """Every column holding a token of the text: start token (CLIP), words, end token."""
        return tuple(range(self.part.offset, self.end + 1))


def text_layout(parts: tuple[TextPart, ...], text: str, reference: Reference, words_from: str = "all") -> TokenLayout:
    """The edit text's word columns, end token and reference columns in the sequence of ``parts``.

    ``end`` is T5's ``</s>`` where the sequence has T5 tokens, else CLIP's end token.
    """
    check_text_options(reference, words_from)
    aligned = [_align(part, text) for part in parts]
    by_encoder = {tokens.part.encoder: tokens for tokens in aligned}
    word_parts = aligned if words_from == "all" else [tokens for tokens in aligned if tokens.part.encoder == words_from]
    if not word_parts:
        raise ValueError(f"words_from={words_from!r}, but the text sequence has no {words_from} tokens.")
    spans = tuple(tuple(c for tokens in word_parts for c in tokens.spans[k]) for k in range(len(aligned[0].words)))
    end = by_encoder.get("t5", aligned[-1]).end
    return TokenLayout(words=aligned[0].words, spans=spans, end=end, reference=_reference(reference, by_encoder, aligned))


def check_text_options(reference: str | None, words_from: str) -> None:
    """A ValueError listing the allowed values if ``reference`` (None: a backbone's default) or ``words_from`` is unknown."""
    if reference is not None and reference not in REFERENCES:
        raise ValueError(f"Unknown start-token reference {reference!r}; expected one of: {', '.join(REFERENCES)}.")
    if words_from not in WORDS_FROM:
        raise ValueError(f"Unknown words_from {words_from!r}; expected one of: {', '.join(WORDS_FROM)}.")


def _align(part: TextPart, text: str) -> _PartTokens:
    start_tokens = _START_TOKENS[part.encoder]
    words, spans, end = align_words(part.tokenizer, text, first=part.offset + start_tokens, capacity=part.length - start_tokens - 1)
    return _PartTokens(part, words, spans, end)


def _reference(reference: Reference, by_encoder: dict[str, _PartTokens], aligned: list[_PartTokens]) -> tuple[int, ...]:
    if reference == "mean":
        return tuple(c for tokens in aligned for c in tokens.columns)
    encoder = "clip" if reference == "clip_bos" else "t5"
    if encoder not in by_encoder:
        raise ValueError(f"The start-token reference {reference!r} needs {encoder} tokens, which this model's text sequence lacks.")
    tokens = by_encoder[encoder]
    if reference == "clip_bos":
        return (tokens.part.offset,)
    if reference == "eos":
        return (tokens.end,)
    pad = tokens.end + 1
    if pad >= tokens.part.offset + tokens.part.length:
        raise ValueError("The start-token reference 'pad' needs a padding token, but the text fills the T5 sequence.")
    return (pad,)
