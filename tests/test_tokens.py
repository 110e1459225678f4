"""Word/token alignment with the real CLIP BPE tokenizer."""

from __future__ import annotations

import pytest

from benchmarks.models.tiny import clip_tokenizer
from instdiffedit.tokens import token_layout


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer()


def test_a_word_the_bpe_splits_spans_all_its_tokens(tokenizer) -> None:
    layout = token_layout(tokenizer, "Shiba Inu dog")
    assert layout.words == ("Shiba", "Inu", "dog")
    assert [len(span) for span in layout.spans][2] == 1  # "dog" is one token
    assert len(layout.spans[0]) + len(layout.spans[1]) > 2  # "Shiba" and "Inu" are not
    ids = tokenizer("Shiba Inu dog").input_ids
    assert layout.spans[0][0] == 1 and layout.end == len(ids) - 1 and ids[layout.end] == tokenizer.eos_token_id
    flat = [position for span in layout.spans for position in span]
    assert flat == list(range(1, layout.end))  # contiguous, in order, no token left out


def test_punctuation_stays_with_its_word(tokenizer) -> None:
    layout = token_layout(tokenizer, "a dog, on grass")
    assert layout.words[1] == "dog," and len(layout.spans[1]) == 2


def test_empty_and_overlong_texts_are_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="empty"):
        token_layout(tokenizer, "   ")
    with pytest.raises(ValueError, match="at most 75"):
        token_layout(tokenizer, " ".join(["raccoon"] * 80))


def test_a_layouts_extent_covers_every_position_it_names() -> None:
    from instdiffedit.tokens import TokenLayout

    assert TokenLayout(words=("a", "cat"), spans=((1,), (2, 3)), end=4).extent == 5
    assert TokenLayout(words=("cat",), spans=((0,),), end=1, reference=(2,)).extent == 3  # T5's first padding token
