"""Fabricated PIE-Bench folders in the authors' exact layout, with masks run-length encoded here.

The encoder is written from the format's description (runs of ones as absolute
``[start, length]`` pairs over the row-major pixels), independently of the decoder under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image


def encode_runs(mask: np.ndarray) -> list[int]:
    """PIE-Bench's encoding of a binary H x W mask: ``[start, length, ...]`` of its runs of ones, row-major."""
    flat = np.concatenate([[0], mask.astype(np.int8).reshape(-1), [0]])
    changes = np.flatnonzero(np.diff(flat))
    starts, ends = changes[::2], changes[1::2]
    return [int(v) for pair in zip(starts, ends - starts) for v in pair]


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


# Items of three edit types in the authors' folder layout (type 0 flat; the others nested by
# artificial/natural and scene), their prompts in the authors' bracket style.
ITEMS: dict[str, dict[str, Any]] = {
    "000000000000": {
        "image_path": "0_random_140/000000000000.jpg",
        "original_prompt": "a slanted mountain bicycle on the road in front of a building",
        "editing_prompt": "a slanted [rusty] mountain bicycle on the road in front of a building",
        "editing_instruction": "Make the frame of the bike rusty",
        "editing_type_id": "0",
        "blended_word": "bicycle bicycle",
        "box": (8, 4, 40, 60),
    },
    "111000000000": {
        "image_path": "1_change_object_80/1_artificial/1_animal/111000000000.jpg",
        "original_prompt": "a [cat] sitting on a wooden chair",
        "editing_prompt": "a [dog] sitting on a wooden chair",
        "editing_instruction": "Change the cat to a dog",
        "editing_type_id": "1",
        "blended_word": "cat dog",
        "box": (20, 16, 56, 48),
    },
    "911000000000": {
        "image_path": "9_change_style_80/1_artificial/1_animal/911000000000.jpg",
        "original_prompt": "[a photo of] a bird standing on a tree branch",
        "editing_prompt": "[a watercolor painting of] a bird standing on a tree branch",
        "editing_instruction": "Make it a watercolor painting",
        "editing_type_id": "9",
        "blended_word": "",
        "box": (0, 0, 64, 64),
    },
}
SIZE = 64


def write_pie_bench(root: Path, items: dict[str, dict[str, Any]] | None = None, size: int = SIZE) -> Path:
    """``root/mapping_file.json`` and ``root/annotation_images/...`` for ``items`` (default :data:`ITEMS`).

    Each item's ``box`` (top, left, bottom, right) becomes its mask; its image is a gradient
    with the box brighter. Returns ``root``.
    """
    mapping = {}
    rng = np.random.default_rng(0)
    for item_id, fields in (ITEMS if items is None else items).items():
        fields = dict(fields)
        mask = box_mask(size, size, *fields.pop("box"))
        pixels = (rng.random((size, size, 3)) * 120 + 60 * mask[..., None]).astype(np.uint8)
        path = root / "annotation_images" / fields["image_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(pixels).save(path, quality=95)
        mapping[item_id] = {**fields, "mask": encode_runs(mask)}
    (root / "mapping_file.json").write_text(json.dumps(mapping, indent=1), encoding="utf-8")
    return root


def item_mask(item_id: str, size: int = SIZE) -> np.ndarray:
    return box_mask(size, size, *ITEMS[item_id]["box"])
