"""Which token columns of the text encoder's sequence belong to which word of the edit text."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenLayout:
    """Positions in the padded token sequence (columns of the text-attention maps).

    ``spans[k]`` lists the positions of ``words[k]``'s tokens (several for words the BPE
    splits, e.g. "Shiba" -> "shi", "ba"); ``end`` is the position of the end token;
    ``reference`` the positions whose mean is the map InstDiffEdit inverts: the start token,
    position 0, for CLIP sequences (see :mod:`instdiffedit.token_references` for T5 text).
    """

    words: tuple[str, ...]
    spans: tuple[tuple[int, ...], ...]
    end: int
    reference: tuple[int, ...] = (0,)

    @property
    def extent(self) -> int:
        """The number of leading columns that hold every position named here (a capture may keep only those)."""
        return 1 + max(self.end, *self.reference, *(position for span in self.spans for position in span))


def token_layout(tokenizer: PreTrainedTokenizerBase, text: str) -> TokenLayout:
    """Align the whitespace-separated words of ``text`` with a CLIP tokenizer's positions."""
    words, spans, end = align_words(tokenizer, text, first=1, capacity=tokenizer.model_max_length - 2)
    return TokenLayout(words=words, spans=spans, end=end)


def align_words(tokenizer: PreTrainedTokenizerBase, text: str, first: int, capacity: int) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...], int]:
    """The words of ``text``, each word's token positions, and the position after the last one.

    ``first`` is the position of the text's first token (1 after CLIP's start token, 0 in T5's
    sequences); ``capacity`` the number of text tokens the sequence holds. Each word is
    tokenised alone and must reproduce the next tokens of the whole text (true for CLIP's BPE
    and T5's SentencePiece, which never merge across spaces); anything else is an error, never
    a guess.
    """
    words = tuple(text.split())
    if not words:
        raise ValueError("The edit text is empty: InstDiffEdit needs at least one word to locate.")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) > capacity:
        raise ValueError(f"The edit text {text!r} has {len(ids)} tokens; the text encoder takes at most {capacity}.")
    spans, position = [], first
    for word in words:
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        offset = position - first
        if not word_ids or ids[offset : offset + len(word_ids)] != word_ids:
            raise ValueError(f"Could not align the word {word!r} of {text!r} with the tokenizer's tokens.")
        spans.append(tuple(range(position, position + len(word_ids))))
        position += len(word_ids)
    return words, tuple(spans), position
