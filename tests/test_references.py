"""Reference rows: trivial masks scored on the same items as the method."""

from __future__ import annotations

import pytest

from benchmarks.metrics.references import reference_rows
from benchmarks.toy.split import ToyShapesSplit


def test_the_whole_image_scores_the_mean_share_of_the_ground_truth_region() -> None:
    split = ToyShapesSplit(n=12)
    ids = split.item_ids()
    rows = reference_rows(split, ids)
    shares = [float(split.load(i).gt_mask.mean()) for i in ids]
    assert list(rows.index.get_level_values("method")) == ["reference: disc", "reference: full"]
    assert rows.loc[("reference: full", "-"), "mask_iou"] == pytest.approx(100 * sum(shares) / len(shares), rel=1e-5)
    assert rows.loc[("reference: disc", "-"), "items"] == 12
    assert 0 < rows.loc[("reference: disc", "-"), "mask_iou"] < 100
