"""ImageNet-1k class names: the vocabulary of the edit accuracy, SFID/CSFID and the ImageNet split's lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[list[str], list[str]]:
    """WordNet ids and lemma strings ("tench, Tinca tinca") of the 1000 ImageNet-1k classes, by index."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return list(info.label_names()), list(info.label_descriptions())


def imagenet_class_index(name: str) -> int:
    """The ImageNet-1k index of a class given by index, WordNet id or name.

    Accepts ``"160"``, ``"n02088094"``, the full lemma string ``"Afghan hound, Afghan"``, its
    first lemma ``"Afghan hound"`` or any other lemma (``"Afghan"``); exact matches win over
    case-insensitive ones. Raises ``KeyError`` naming the class when it does not map, and when
    a name is ambiguous (``"crane"`` is a bird and a machine) with the WordNet ids to use instead.
    """
    wnids, descriptions = imagenet_names()
    text = str(name).strip()
    if text.isdigit() and int(text) < len(wnids):
        return int(text)
    if text in wnids:
        return wnids.index(text)
    lemmas = [[lemma.strip() for lemma in d.split(",")] for d in descriptions]
    rules: list[Callable[[int], bool]] = [
        lambda i: descriptions[i] == text,
        lambda i: lemmas[i][0] == text,
        lambda i: text in lemmas[i],
        lambda i: descriptions[i].casefold() == text.casefold(),
        lambda i: lemmas[i][0].casefold() == text.casefold(),
        lambda i: text.casefold() in (lemma.casefold() for lemma in lemmas[i]),
    ]
    for rule in rules:
        found = [i for i in range(len(wnids)) if rule(i)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            options = "; ".join(f"{wnids[i]} ({descriptions[i]})" for i in found)
            raise KeyError(f"ImageNet class name {text!r} is ambiguous: give its WordNet id instead, one of {options}.")
    raise KeyError(f"{text!r} is not an ImageNet-1k class name, WordNet id or index (see timm.data.ImageNetInfo).")


def imagenet_class_indices(names: Iterable[str]) -> list[int]:
    """:func:`imagenet_class_index` of every name; one error naming every name that does not map."""
    indices, problems = [], []
    for name in names:
        try:
            indices.append(imagenet_class_index(name))
        except KeyError as error:
            problems.append(str(error.args[0]))
    if problems:
        raise KeyError(" ".join(problems))
    return indices
