"""The golden cases of tests/test_goldens.py: each method on the tiny SD model, fixed settings and seeds.

Shared by the test and by the script that wrote its expected values (``python tests/sd_goldens.py``),
so both make exactly the same edits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from baselines import DiffEdit, DiffEditDDIM, LeditsPP, OracleInpaint, SDEdit
from benchmarks.data.items import EditItem
from benchmarks.data.synthetic import SyntheticDataset
from instdiffedit import EditResult, InstDiffEdit

SEED = 20240117
SIZE = 80  # not the working size (64): results come back resized, as for real inputs
MASK_STRIDE = 10  # the exact mask is compared at every 10th pixel of each axis (8 x 8 bits)

CASES: dict[str, Callable] = {
    "instdiffedit": lambda p: InstDiffEdit(p.base, p.inpaint, num_inference_steps=10, inpaint_steps=4),
    "instdiffedit, latent blend": lambda p: InstDiffEdit(p.base, None, num_inference_steps=10, inpaint_steps=4),
    "instdiffedit, phi 0.6": lambda p: InstDiffEdit(p.base, p.inpaint, num_inference_steps=10, inpaint_steps=4, threshold=0.6),
    "instdiffedit, float, t-1": lambda p: InstDiffEdit(p.base, p.inpaint, num_inference_steps=10, inpaint_steps=4, arithmetic="float", blend_with="t-1"),
    "no_mask": lambda p: InstDiffEdit(p.base, p.inpaint, num_inference_steps=10, mask_guidance=False, output="decode"),
    "diffedit": lambda p: DiffEdit(p.base, p.inpaint, num_noises=2, num_inference_steps=10, inpaint_steps=4),
    "diffedit, latent blend": lambda p: DiffEdit(p.base, None, num_noises=2, num_inference_steps=10, inpaint_steps=4),
    "sdedit": lambda p: SDEdit(p.base, num_inference_steps=10),
    "oracle_inpaint": lambda p: OracleInpaint(p.base, p.inpaint, inpaint_steps=4),
    "oracle_inpaint, latent blend": lambda p: OracleInpaint(p.base, None, inpaint_steps=4),
    "diffedit_ddim": lambda p: DiffEditDDIM(p.base, num_inference_steps=10, num_maps_per_mask=2),
    "ledits_pp": lambda p: LeditsPP(p.base, num_inversion_steps=10),
}


def golden_item() -> EditItem:
    return SyntheticDataset(n=1, size=SIZE, seed=7).load("synthetic-00000")


def edit(pipes, case: str) -> EditResult:
    item = golden_item()
    editor = CASES[case](pipes)
    return editor.edit(item.image, target=item.target, source=item.source, mask=item.gt_mask, generator=torch.Generator().manual_seed(SEED))


def image_slice(result: EditResult) -> np.ndarray:
    """The last channel of a 3 x 3 patch at the centre and at the bottom-right corner, in [0, 1]."""
    pixels = np.asarray(result.image, dtype=np.float64) / 255
    c = SIZE // 2
    return np.concatenate([pixels[c - 1 : c + 2, c - 1 : c + 2, -1].ravel(), pixels[-3:, -3:, -1].ravel()])


def mask_bits(result: EditResult) -> list[str] | None:
    if result.mask is None:
        return None
    grid = result.mask[::MASK_STRIDE, ::MASK_STRIDE].to(torch.int64)
    return ["".join(str(v) for v in row.tolist()) for row in grid]


def soft_slice(result: EditResult) -> list[float] | None:
    """The soft mask at the bits' pixels of the middle row."""
    if result.soft_mask is None:
        return None
    return [round(float(v), 4) for v in result.soft_mask[SIZE // 2, ::MASK_STRIDE]]


def history_sums(result: EditResult) -> list[int] | None:
    """Each denoising step's mask area (pixels of the method's mask grid), for methods whose mask evolves."""
    return None if result.mask_history is None else [int(m.sum()) for m in result.mask_history]


def summary(result: EditResult) -> dict:
    return {
        "image": [round(float(v), 4) for v in image_slice(result)],
        "mask": mask_bits(result),
        "mask_sum": None if result.mask is None else int(result.mask.sum()),
        "soft": soft_slice(result),
        "history": history_sums(result),
        "denoiser_evals": result.denoiser_evals,
    }


if __name__ == "__main__":
    from benchmarks.models.tiny import tiny_pipelines

    torch.set_num_threads(1)
    pipes = tiny_pipelines(device="cpu")
    for case in CASES:
        print(f"    {case!r}: {summary(edit(pipes, case))!r},")
