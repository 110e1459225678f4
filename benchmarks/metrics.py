"""Metrics over one edited item. Pure functions over tensors, and metric objects the runner calls.

A metric object is called as ``metric(item, result)`` and returns named values for the row;
``nan`` marks a value that is undefined for the item (never a made-up 0).
"""

from __future__ import annotations

import math

import torch

from benchmarks.datasets import EditItem
from instdiffedit.types import EditResult


def mask_iou(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Intersection over union of two binary masks of the same shape; nan when both are empty."""
    if predicted.shape != truth.shape:
        raise ValueError(f"Mask shapes differ: predicted {tuple(predicted.shape)}, ground truth {tuple(truth.shape)}.")
    predicted, truth = predicted.bool(), truth.bool()
    union = (predicted | truth).sum().item()
    return (predicted & truth).sum().item() / union if union else math.nan


class MaskIoU:
    """Mask IoU (%) of the method's binary mask against the ground truth, at image resolution."""

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None or result.mask is None:
            return {"mask_iou": math.nan}
        return {"mask_iou": 100.0 * mask_iou(result.mask, item.gt_mask)}
