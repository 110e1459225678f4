"""The named object colours of the generated splits (the synthetic split and the toy world).

RGB in [0, 1]. The names are single CLIP tokens, so the edit texts ("a red circle" -> "a blue
square") stay ordinary English for the tokenizer; any two of these colours, and the toy world's
backgrounds (:data:`benchmarks.toy.render.BACKGROUNDS`), are at least 0.3 apart (Euclidean).
"""

from __future__ import annotations

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.15, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.20, 0.70),
    "orange": (0.95, 0.50, 0.05),
}
