"""A T5 tokenizer built offline, for the tiny SD 3.x and FLUX.1 models.

T5's own SentencePiece model cannot be downloaded here, so a small unigram model is trained at
build time on the captions below (a fraction of a second) and wrapped as ``T5TokenizerFast``,
with T5's conventions: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, ``</s>`` appended to every
text, no start token, 100 sentinel tokens ``<extra_id_*>`` after the pieces, 512 tokens at most.
Common caption words become single pieces and rare ones split into several, as with the real
tokenizer, so the word alignment of the edit text is exercised for real.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import sentencepiece
from transformers import T5TokenizerFast

T5_MAX_LENGTH = 512
"""``model_max_length`` of the T5 tokenizers of SD 3.5 and FLUX.1."""

_VOCAB_SIZE = 400  # an upper bound: the corpus decides how many pieces there are

CAPTIONS = (
    "a photo of a cat sitting on a sofa",
    "a photo of a dog running on the beach",
    "a raccoon standing in the snow",
    "a tiger lying in the tall grass",
    "a red car parked on a quiet street",
    "a bowl of fruit on a wooden table",
    "an apple and an orange next to a glass of water",
    "two birds flying over the sea at sunset",
    "a horse grazing in a green field",
    "a small boat on a calm lake",
    "a cup of coffee on a desk near a laptop",
    "a teddy bear on a bed with a blue blanket",
    "a painting of a mountain village in winter",
    "a man riding a bicycle through the city",
    "a woman holding an umbrella in the rain",
    "a child playing with a ball in the park",
    "a vase of flowers on a kitchen counter",
    "a white house with a red door",
    "a brown dog wearing a hat",
    "a black cat on a windowsill",
    "a zebra and a giraffe at the zoo",
    "a pizza with cheese and tomatoes",
    "a lion resting under a tree",
    "a bear catching a fish in a river",
    "a sheep and a cow on a farm",
    "an elephant walking through the desert",
    "a penguin on the ice",
    "a monkey eating a banana",
    "a rabbit in a garden of carrots",
    "a fox in the forest at night",
    "a castle on a hill under a cloudy sky",
    "a train crossing a bridge",
    "an airplane above the clouds",
    "a chair and a lamp in an empty room",
    "a clock on the wall of an old station",
    "a sandwich on a white plate",
    "a shiba inu dog sitting on the grass",
    "a golden retriever playing in the water",
    "a squirrel eating a burger",
    "a duck swimming in a pond",
    # Every letter in both cases, the digits and common punctuation, so no character is unknown.
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    'Shiba Inu, Golden Retriever; 0 1 2 3 4 5 6 7 8 9: what\'s (new) - yes? "no"',
)
"""Captions of the kind the editing benchmarks use (objects, animals, scenes, edits): the tiny
models' tokenizers are trained on these."""


def t5_tokenizer() -> T5TokenizerFast:
    """The tiny models' T5 tokenizer, trained afresh (deterministically) on every call."""
    with tempfile.TemporaryDirectory() as folder:
        # spiece.model is the file real T5 repositories ship; transformers converts it to its
        # fast tokenizer (normaliser, unigram pieces, "</s>" post-processor) on loading.
        Path(folder, "spiece.model").write_bytes(_sentencepiece_model())
        return T5TokenizerFast.from_pretrained(folder, model_max_length=T5_MAX_LENGTH, extra_ids=100)


def _sentencepiece_model() -> bytes:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS),
        model_writer=model,
        model_type="unigram",
        vocab_size=_VOCAB_SIZE,
        hard_vocab_limit=False,
        character_coverage=1.0,
        # T5's special ids; it has no start token.
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()
