"""Word columns and start-token references in SD 3.x's and FLUX.1's text sequences."""

from __future__ import annotations

import pytest
import torch

from benchmarks.models.t5_tokenizer import t5_tokenizer
from benchmarks.models.tiny import clip_tokenizer
from benchmarks.models.tiny_families import tiny_family_pipelines
from instdiffedit.token_references import (
    FLUX_T5_LENGTH,
    SD3_T5_LENGTH,
    clip_parts,
    flux_parts,
    sd3_parts,
    text_layout,
)
from instdiffedit.tokens import token_layout

CLIP_BOS = 49406
TEXT = "a Shiba Inu dog"  # "Shiba" and "Inu" split into several tokens in both tokenizers


@pytest.fixture(scope="module")
def clip():
    return clip_tokenizer()


@pytest.fixture(scope="module")
def t5():
    return t5_tokenizer()


def t5_ids(t5, text: str, length: int) -> list[int]:
    """The ids the SD 3.x and FLUX.1 pipelines feed T5."""
    return t5(text, padding="max_length", max_length=length, truncation=True).input_ids


def sd3_ids(clip, t5, text: str) -> list[int]:
    """One id per column of SD 3.x's joint text sequence (CLIP vocabulary, then T5 vocabulary)."""
    return clip(text, padding="max_length", max_length=77, truncation=True).input_ids + t5_ids(t5, text, SD3_T5_LENGTH)


class TestFlux:
    def test_word_columns_are_the_texts_t5_tokens_from_column_0(self, t5) -> None:
        layout = text_layout(flux_parts(t5), TEXT, reference="eos")
        ids = t5_ids(t5, TEXT, FLUX_T5_LENGTH)
        assert layout.words == ("a", "Shiba", "Inu", "dog")
        assert [c for span in layout.spans for c in span] == list(range(layout.end))
        assert len(layout.spans[1]) > 1 and len(layout.spans[2]) > 1
        for word, span in zip(layout.words, layout.spans):
            assert [ids[c] for c in span] == t5(word, add_special_tokens=False).input_ids
        assert ids[layout.end] == t5.eos_token_id == 1

    def test_eos_pad_and_mean_references(self, t5) -> None:
        ids = t5_ids(t5, TEXT, FLUX_T5_LENGTH)
        eos = text_layout(flux_parts(t5), TEXT, reference="eos")
        assert eos.reference == (eos.end,) and ids[eos.end] == 1
        pad = text_layout(flux_parts(t5), TEXT, reference="pad").reference
        assert pad == (eos.end + 1,) and ids[pad[0]] == t5.pad_token_id == 0
        assert text_layout(flux_parts(t5), TEXT, reference="mean").reference == tuple(range(eos.end + 1))

    def test_there_is_no_clip_start_token_to_refer_to(self, t5) -> None:
        with pytest.raises(ValueError, match="'clip_bos' needs clip tokens"):
            text_layout(flux_parts(t5), TEXT, reference="clip_bos")
        with pytest.raises(ValueError, match="no clip tokens"):
            text_layout(flux_parts(t5), TEXT, reference="eos", words_from="clip")

    def test_a_text_that_fills_the_sequence_has_no_padding_to_refer_to(self, t5) -> None:
        text = "dog " * 7  # 7 tokens + </s> = 8
        assert text_layout(flux_parts(t5, max_sequence_length=8), text, reference="eos").end == 7
        with pytest.raises(ValueError, match="fills the T5 sequence"):
            text_layout(flux_parts(t5, max_sequence_length=8), text, reference="pad")
        with pytest.raises(ValueError, match="at most 7"):
            text_layout(flux_parts(t5, max_sequence_length=8), text + "dog", reference="eos")


class TestSD3:
    def test_clip_columns_come_first_then_t5_columns_from_77(self, clip, t5) -> None:
        ids = sd3_ids(clip, t5, TEXT)
        clip_only = text_layout(sd3_parts(clip, t5), TEXT, reference="clip_bos", words_from="clip")
        t5_only = text_layout(sd3_parts(clip, t5), TEXT, reference="clip_bos", words_from="t5")
        for word, clip_span, t5_span in zip(clip_only.words, clip_only.spans, t5_only.spans):
            assert [ids[c] for c in clip_span] == clip(word, add_special_tokens=False).input_ids
            assert [ids[c] for c in t5_span] == t5(word, add_special_tokens=False).input_ids
            assert max(clip_span) < 77 <= min(t5_span)
        assert clip_only.spans[0] == (1,) and t5_only.spans[0] == (77,)
        assert clip_only.end == t5_only.end and ids[t5_only.end] == t5.eos_token_id  # the end token is T5's

    def test_word_maps_by_default_take_both_encoders_columns(self, clip, t5) -> None:
        parts = sd3_parts(clip, t5)
        both = text_layout(parts, TEXT, reference="clip_bos")
        clip_only = text_layout(parts, TEXT, reference="clip_bos", words_from="clip")
        t5_only = text_layout(parts, TEXT, reference="clip_bos", words_from="t5")
        assert both.spans == tuple(c + t for c, t in zip(clip_only.spans, t5_only.spans))

    def test_references(self, clip, t5) -> None:
        ids = sd3_ids(clip, t5, TEXT)
        parts = sd3_parts(clip, t5)
        assert text_layout(parts, TEXT, reference="clip_bos").reference == (0,) and ids[0] == CLIP_BOS
        eos = text_layout(parts, TEXT, reference="eos").reference
        assert ids[eos[0]] == t5.eos_token_id and eos[0] > 77
        pad = text_layout(parts, TEXT, reference="pad").reference
        assert pad == (eos[0] + 1,) and ids[pad[0]] == t5.pad_token_id
        mean = text_layout(parts, TEXT, reference="mean").reference
        n_clip = len(clip(TEXT).input_ids)  # start, words, end
        assert mean == (*range(n_clip), *range(77, eos[0] + 1))

    def test_without_t5_the_text_is_the_clip_columns_and_the_t5_references_are_refused(self, clip) -> None:
        parts = sd3_parts(clip, None)  # a pipeline loaded with text_encoder_3=None: T5's columns are zeros
        layout = text_layout(parts, TEXT, reference="clip_bos")
        assert layout == text_layout(clip_parts(clip), TEXT, reference="clip_bos")
        assert layout.reference == (0,) and max(c for span in layout.spans for c in span) < layout.end < 77
        for reference in ("eos", "pad"):
            with pytest.raises(ValueError, match=f"'{reference}' needs t5 tokens, which this model's text sequence lacks"):
                text_layout(parts, TEXT, reference=reference)

    def test_the_tiny_pipeline_lays_its_prompt_embeddings_out_as_described(self, _private_cache) -> None:
        pipe = tiny_family_pipelines("sd3", _private_cache, device="cpu").base
        with torch.no_grad():
            embeds, *_ = pipe.encode_prompt(TEXT, TEXT, TEXT, do_classifier_free_guidance=False)
            t5_out = pipe.text_encoder_3(torch.tensor([t5_ids(pipe.tokenizer_3, TEXT, SD3_T5_LENGTH)]))[0]
            clip_ids = torch.tensor([pipe.tokenizer(TEXT, padding="max_length", max_length=77).input_ids])
            clip_l = pipe.text_encoder(clip_ids, output_hidden_states=True).hidden_states[-2]
        assert embeds.shape[1] == 77 + SD3_T5_LENGTH
        torch.testing.assert_close(embeds[:, 77:], t5_out)
        torch.testing.assert_close(embeds[:, :77, : clip_l.shape[-1]], clip_l)  # then CLIP-G's channels
        clip_width = clip_l.shape[-1] + pipe.text_encoder_2.config.hidden_size
        assert (embeds[:, :77, clip_width:] == 0).all()  # zero-padded to T5's width


def test_a_clip_only_sequence_gives_the_sd1_layout(clip) -> None:
    assert text_layout(clip_parts(clip), TEXT, reference="clip_bos") == token_layout(clip, TEXT)
    with pytest.raises(ValueError, match="'eos' needs t5 tokens"):
        text_layout(clip_parts(clip), TEXT, reference="eos")


def test_unknown_references_and_word_sources_are_errors(clip, t5) -> None:
    with pytest.raises(ValueError, match="Unknown start-token reference 'bos'; expected one of: clip_bos, eos, pad, mean"):
        text_layout(sd3_parts(clip, t5), TEXT, reference="bos")
    with pytest.raises(ValueError, match="Unknown words_from 'both'"):
        text_layout(sd3_parts(clip, t5), TEXT, reference="clip_bos", words_from="both")
