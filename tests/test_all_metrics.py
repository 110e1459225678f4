"""The runner with every metric on, on the tiny model: every metric column gets a value.

Weights cannot be downloaded here, so the test injects small random backbones through the
metrics' constructors; the harness never offers such a switch.
"""

from __future__ import annotations

import math
from pathlib import Path

import PIL.Image
from fakes import ChannelMeans, paper_metrics

from benchmarks.data.items import EditItem
from benchmarks.data.synthetic import SyntheticDataset
from benchmarks.metrics.corpus import FID, SFID
from benchmarks.metrics.feature_means import compute_feature_means
from benchmarks.run.results import ResultsTable
from benchmarks.run.runner import RunSpec, run
from instdiffedit import InstDiffEdit

TENCH, GOLDFISH = "n01440764", "n01443537"


class SyntheticWithClasses(SyntheticDataset):
    """The synthetic split with ImageNet target/source classes, so class-based metrics apply."""

    def target_classes(self) -> list[str]:
        return [TENCH, GOLDFISH]

    def load(self, item_id: str) -> EditItem:
        item = super().load(item_id)
        index = int(item_id.rsplit("-", 1)[1])
        classes = {"target_class": self.target_classes()[index % 2], "source_class": self.target_classes()[1 - index % 2]}
        return EditItem(item.id, item.image, item.target, item.source, item.prompt, item.gt_mask, classes)


def _feature_means(tmp_path: Path) -> Path:
    for wnid, colour in ((TENCH, (90, 20, 20)), (GOLDFISH, (200, 120, 20))):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        PIL.Image.new("RGB", (16, 16), colour).save(tmp_path / "train" / wnid / "a.png")
    out = tmp_path / "means.pt"
    compute_feature_means(tmp_path / "train", out, feature=ChannelMeans(), workers=0, progress=False)
    return out


def test_every_metric_column_is_filled(tiny, tmp_path: Path) -> None:
    metrics = paper_metrics()
    corpus = {"fid": FID(feature=ChannelMeans()), "sfid": SFID(means=str(_feature_means(tmp_path)), feature=ChannelMeans())}
    dataset = SyntheticWithClasses(n=3, size=64)
    for metric in metrics.values():
        metric.prepare(dataset)
    editor = InstDiffEdit(tiny.base, tiny.inpaint, num_inference_steps=10, inpaint_steps=4)
    table = ResultsTable(tmp_path / "results.jsonl")
    spec = RunSpec(method="instdiffedit", config_id="c", master_seed=0, image_dir=tmp_path / "images")
    summary = run(editor, dataset, table, spec, metrics=metrics, corpus_metrics=corpus)

    rows = table.frame()
    columns = ["mask_iou", "changing_rate", "bg_psnr", "bg_ssim", "bg_mse", "bg_lpips", "lpips", "clip_score", "accuracy", "unedited"]
    assert (rows["status"] == "ok").all()
    for column in columns:
        assert rows[column].notna().all(), column
    values = summary.loc[("instdiffedit", "c")]
    for column in [*columns, "fid", "sfid", "csfid"]:
        assert not math.isnan(values[column]), column
