"""The InstDiffEdit paper's published numbers, for the report to show beside ours (marked as such).

Source: Zou et al., "Towards Efficient Diffusion-Based Image Editing with Instant Attention
Masks", AAAI 2024 (arXiv 2401.07709), Tables 1-3 and Sec. 4.4. Units are the harness's: mask IoU in %, LPIPS x100,
seconds per image (theirs on an A30 GPU, for all splits). Their changing rate has no published
formula (ours: see benchmarks/metrics/functional.py), so only its value can be set beside ours.
"""

from __future__ import annotations

SOURCE = "Zou et al., AAAI 2024 (arXiv 2401.07709); seconds measured on an A30 GPU"

_SECONDS = {"instdiffedit": 10.8, "diffedit": 64.0}

PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "editing_mask": {
        "instdiffedit": {"mask_iou": 56.2, "seconds": _SECONDS["instdiffedit"]},
        "diffedit": {"mask_iou": 33.0, "seconds": _SECONDS["diffedit"]},
        "no_mask": {"changing_rate": 1.38},
    },
    "imagenet": {
        "instdiffedit": {"lpips": 28.6, "csfid": 65.1, "seconds": _SECONDS["instdiffedit"]},
        "diffedit": {"seconds": _SECONDS["diffedit"]},
    },
    "imagen": {
        "instdiffedit": {"lpips": 17.0, "fid": 55.3, "clip_score": 0.249, "seconds": _SECONDS["instdiffedit"]},
        "diffedit": {"lpips": 29.7, "seconds": _SECONDS["diffedit"]},
    },
}
"""split -> method -> metric -> the paper's value."""

PUBLISHED_SECONDS = _SECONDS
"""Seconds per image the paper reports for every split (its speed comparison)."""
