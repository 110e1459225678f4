"""Which token columns of the text encoder's sequence belong to which word of the edit text."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenLayout:
    """Positions in the padded token sequence: the start token is always position 0.

    ``spans[k]`` lists the positions of ``words[k]``'s tokens (several for words the BPE
    splits, e.g. "Shiba" -> "shi", "ba"); ``end`` is the position of the end token.
    """

    words: tuple[str, ...]
    spans: tuple[tuple[int, ...], ...]
    end: int


def token_layout(tokenizer: PreTrainedTokenizerBase, text: str) -> TokenLayout:
    """Align the whitespace-separated words of ``text`` with the tokenizer's positions.

    Each word is tokenised alone and must reproduce the next tokens of the whole text (true for
    CLIP's BPE, which never merges across spaces); anything else is an error, never a guess.
    """
    words = tuple(text.split())
    if not words:
        raise ValueError("The edit text is empty: InstDiffEdit needs at least one word to locate.")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    capacity = tokenizer.model_max_length - 2
    if len(ids) > capacity:
        raise ValueError(f"The edit text {text!r} has {len(ids)} tokens; the text encoder takes at most {capacity}.")
    spans, position = [], 1
    for word in words:
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        if not word_ids or ids[position - 1 : position - 1 + len(word_ids)] != word_ids:
            raise ValueError(f"Could not align the word {word!r} of {text!r} with the tokenizer's tokens.")
        spans.append(tuple(range(position, position + len(word_ids))))
        position += len(word_ids)
    return TokenLayout(words=words, spans=tuple(spans), end=position)
