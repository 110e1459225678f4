"""Captions of toy scenes, and CLIP token ids for many captions at once.

Grammar (objects in slot order, i.e. bottom layer first):

* one object:    "a red circle on a gray background"
* two objects:   "a red circle and a blue square on a gray background"
* three objects: "a red circle, a blue square and an orange star on a white background"
* no object:     "a gray background" (only if layouts were drawn with ``min_objects=0``)

An object phrase is article + colour + shape, with "an" before a vowel ("an orange star"); a
background phrase is "on a <colour> background". Every word is a single CLIP token and the
comma is its own token, so a caption is at most 20 tokens between BOS and EOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from benchmarks.toy.render import BACKGROUNDS, COLOURS, SHAPES, Layout


def _name(value: str | int, names: Sequence[str], what: str) -> str:
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"Unknown {what} {value!r}; known: {', '.join(names)}.")
        return value
    return names[int(value)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(colour: str | int, shape: str | int) -> str:
    """ "a red circle", "an orange star": a colour and a shape, by name or index."""
    colour = _name(colour, list(COLOURS), "colour")
    shape = _name(shape, SHAPES, "shape")
    return f"{_article(colour)} {colour} {shape}"


def background_phrase(background: str | int) -> str:
    """ "on a gray background": a background colour, by name or index."""
    background = _name(background, list(BACKGROUNDS), "background")
    return f"on {_article(background)} {background} background"


def join_objects(phrases: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _object_phrases(layout: Layout, index: int, mentioned: Sequence[bool] | None = None) -> list[str]:
    """The phrases of scene ``index``'s present objects in slot order (only the ``mentioned`` slots, if given)."""
    present = layout.present[index].tolist()
    if mentioned is not None:
        present = [p and m for p, m in zip(present, mentioned)]
    colours, shapes = layout.colour[index].tolist(), layout.shape[index].tolist()
    return [object_phrase(c, s) for c, s, p in zip(colours, shapes, present) if p]


def caption(layout: Layout, index: int) -> str:
    """The caption of scene ``index`` of ``layout``."""
    phrases = _object_phrases(layout, index)
    background = int(layout.background[index])
    if not phrases:
        name = list(BACKGROUNDS)[background]
        return f"{_article(name)} {name} background"
    return f"{join_objects(phrases)} {background_phrase(background)}"


def captions(layout: Layout) -> list[str]:
    """The captions of all scenes of ``layout``."""
    return [caption(layout, i) for i in range(len(layout))]


def partial_caption(layout: Layout, index: int, mentioned: Sequence[bool], with_background: bool) -> str:
    """Scene ``index`` described in part: the ``mentioned`` slots' objects (of those present), and
    the background phrase if ``with_background`` or if no object is mentioned.

    "a blue square", "a red circle on a gray background", "on a gray background": the forms in
    which the edit methods are prompted (the toy split's targets are such phrases).
    """
    phrases = _object_phrases(layout, index, mentioned)
    background = background_phrase(int(layout.background[index]))
    if not phrases:
        return background
    return f"{join_objects(phrases)} {background}" if with_background else join_objects(phrases)


def training_captions(layout: Layout, generator: torch.Generator, partial_share: float) -> list[str]:
    """Captions for training: the full caption, or for a ``partial_share`` of the scenes a
    partial one (each object mentioned with probability 1/2, the background phrase with 1/2).

    Full captions alone let every pixel read the whole scene from any token (the padding
    positions of a causal encoder hold the whole caption), so nothing made a word's attention
    land on its object; a caption naming only some of the objects does, and it is how the edit
    methods prompt the model.
    """
    n = len(layout)
    partial = (torch.rand(n, generator=generator) < partial_share).tolist()
    mentioned = (torch.rand(n, layout.num_slots, generator=generator) < 0.5).tolist()
    with_background = (torch.rand(n, generator=generator) < 0.5).tolist()
    return [partial_caption(layout, i, mentioned[i], with_background[i]) if partial[i] else caption(layout, i) for i in range(n)]


def num_captions(min_objects: int = 1, max_objects: int = 3) -> int:
    """How many distinct captions layouts with that many objects can have (colours distinct in a scene)."""
    total = 0
    for count in range(min_objects, max_objects + 1):
        ordered_colours = 1
        for i in range(count):
            ordered_colours *= len(COLOURS) - i
        total += ordered_colours * len(SHAPES) ** count
    return total * len(BACKGROUNDS)


class CaptionTokenizer:
    """Pads captions into (B, L) CLIP id tensors like SD 1.x, without calling the tokenizer per caption.

    Each whitespace-separated word is tokenised once by ``tokenizer`` and cached (CLIP's BPE
    never merges across whitespace, so a caption's ids are its words' ids in order); a caption
    becomes BOS, its ids (at most ``L - 2``, like ``truncation=True``), EOS, then ``pad_token_id``
    (EOS for SD 1.x) up to ``L = tokenizer.model_max_length`` (77). Equal to
    ``tokenizer(captions, padding="max_length", max_length=L, truncation=True).input_ids``.
    """

    def __init__(self, tokenizer, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length or tokenizer.model_max_length
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self._words: dict[str, list[int]] = {}

    def word_ids(self, word: str) -> list[int]:
        ids = self._words.get(word)
        if ids is None:
            ids = self._words[word] = list(self.tokenizer(word, add_special_tokens=False).input_ids)
        return ids

    def ids(self, text: str) -> list[int]:
        """A caption's ids without specials or padding."""
        return [i for word in text.split() for i in self.word_ids(word)]

    def __call__(self, texts: Iterable[str]) -> torch.Tensor:
        """(B, L) long tensor of padded ids."""
        rows = []
        room = self.max_length - 2
        for text in texts:
            body = self.ids(text)[:room]
            rows.append([self.bos, *body, self.eos] + [self.pad] * (room - len(body)))
        return torch.tensor(rows, dtype=torch.long).view(-1, self.max_length)

    def encode_layouts(self, layout: Layout) -> torch.Tensor:
        """(N, L) ids of the captions of ``layout``'s scenes."""
        return self(captions(layout))
