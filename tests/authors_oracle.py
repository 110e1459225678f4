"""The InstDiffEdit authors' per-step mask, written afresh from their published algorithm.

Their code (github.com/xiaotianqing/InstDiffEdit at 455968b; the steps are in docs/methods.md)
makes each step's mask on the CPU with numpy, PIL and OpenCV. This module does the same with
the same libraries and dtypes, as the reference the library's torch emulation
(``arithmetic="authors"``) is tested against. It also draws random attention-like cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import PIL.Image


@dataclass(frozen=True)
class AttentionCase:
    attention: np.ndarray  # h x w x 77 float32: probabilities over the token columns
    spans: tuple[tuple[int, ...], ...]  # the words' token columns
    end: int  # the end token's column


def word_images(case: AttentionCase, side: int = 64) -> list[np.ndarray]:
    """``[inverted start, words..., end]`` as uint8 side x side images, as the authors make them."""
    a = case.attention.astype(np.float32)
    columns = [a[..., 0]]
    columns += [np.stack([a[..., c] for c in span]).mean(axis=0) for span in case.spans]
    columns.append(a[..., case.end])
    images = []
    for column in columns:
        level = (255 * column / column.max()).astype(np.uint8)  # float32 arithmetic, then truncation
        resized = PIL.Image.fromarray(level).resize((side, side))  # PIL's default filter: bicubic
        images.append(np.asarray(resized))
    images[0] = 255 - images[0]  # ImageChops.invert
    out = []
    for image in images:
        scaled = image.astype(np.float32) / 255  # torchvision's ToTensor
        out.append(((scaled - scaled.min()) / (scaled.max() - scaled.min()) * 255).astype(np.uint8))
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def positions(images: list[np.ndarray], th1: float = 0.9, th2: float = 0.6) -> list[int]:
    """k* = the word closest to the inverted start map; scores against k*, k*'s own set to 1."""
    words = images[1:-1]
    to_start = [_cosine(word, images[0]) for word in words]
    key = int(np.argmax(to_start))  # the first of equal maxima
    scores = [1.0 if k == key else _cosine(word, words[key]) for k, word in enumerate(words)]
    return [0] + [1 if s >= th1 else -1 if s <= th2 else 0 for s in scores] + [0]


def mask(images: list[np.ndarray], position: list[int], threshold: float = 0.2) -> np.ndarray:
    """Aggregate, ``cv2.GaussianBlur(m, (5, 5), 0)`` twice, min-max, > threshold (bool side x side)."""
    maps = [image.astype(np.float32) / 255 for image in images]
    if len(maps) == 3:  # a single word: its own map
        m = maps[1]
    else:
        objects = sum(m for m, p in zip(maps, position) if p == 1) / position.count(1)
        objects = (objects - objects.min()) / (objects.max() - objects.min())
        m = objects
        if -1 in position:
            back = sum(m for m, p in zip(maps, position) if p == -1) / position.count(-1)
            back = (back - back.min()) / (back.max() - back.min())
            m = np.clip(objects - back, 0, None)
    m = cv2.GaussianBlur(m.astype(np.float32), (5, 5), 0)
    m = cv2.GaussianBlur(m, (5, 5), 0)
    m = (m - m.min()) / (m.max() - m.min())
    return m > threshold


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _layout(rng: np.random.Generator, words: int) -> tuple[tuple[tuple[int, ...], ...], int]:
    spans, column = [], 1
    for _ in range(words):
        length = 2 if rng.random() < 0.25 else 1  # some words split into two tokens
        spans.append(tuple(range(column, column + length)))
        column += length
    return tuple(spans), column


def attention_like_case(rng: np.random.Generator, side: int = 16) -> AttentionCase:
    """An object blob; the start token on the background; object, background and noise words."""
    spans, end = _layout(rng, int(rng.integers(1, 7)))
    yy, xx = np.mgrid[:side, :side] + 0.5
    cy, cx = rng.uniform(3, side - 3, 2)
    ry, rx = rng.uniform(1.5, side / 3, 2)
    blob = np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
    logits = rng.normal(0, 0.3, (side, side, 77))
    logits[..., 0] += 6 - 3 * blob  # the start token takes most of the attention, least on the object
    kinds = rng.choice(["object", "background", "noise"], size=len(spans), p=[0.5, 0.25, 0.25])
    kinds[rng.integers(len(spans))] = "object"
    for kind, span in zip(kinds, spans):
        strength = rng.uniform(1.5, 4)
        for column in span:
            if kind == "object":
                logits[..., column] += strength * blob + rng.normal(0, 0.4, (side, side))
            elif kind == "background":
                logits[..., column] += strength * (1 - blob) + rng.normal(0, 0.4, (side, side))
            else:
                logits[..., column] += rng.normal(0, 1.0, (side, side))
    logits[..., end] += 2 + rng.normal(0, 0.5, (side, side))
    return AttentionCase(_softmax(logits), spans, end)


def uniform_case(rng: np.random.Generator, side: int = 16) -> AttentionCase:
    """No structure: every column's logits drawn uniformly, then the softmax over the 77 columns."""
    spans, end = _layout(rng, int(rng.integers(1, 7)))
    return AttentionCase(_softmax(rng.uniform(0, 4, (side, side, 77))), spans, end)
