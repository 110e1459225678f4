"""Large inputs in bounded memory: a 6000 x 4000 photo is loaded, edited, measured and saved in under 3 GB.

The item runs in a subprocess whose address space is capped once the libraries and the tiny
model are loaded: at that point the cap is its address space plus what is left of 3 GB after
its resident memory, so any allocation that would take its resident memory over 3 GB fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from benchmarks.metrics import functional

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 3 << 30

ITEM = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path

    import torch

    from benchmarks.data.folder_split import FolderSplit
    from benchmarks.metrics.per_item import BackgroundPreservation, ChangingRate, MaskIoU
    from benchmarks.models.tiny import tiny_pipelines
    from benchmarks.run.results import ResultsTable
    from benchmarks.run.runner import RunSpec, run
    from instdiffedit import InstDiffEdit

    manifest, work, cache, limit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(2)
    pipes = tiny_pipelines(cache, device="cpu")
    editor = InstDiffEdit(pipes.base, pipes.inpaint, num_inference_steps=4, inpaint_steps=2)
    metrics = {"iou": MaskIoU(), "rate": ChangingRate(), "background": BackgroundPreservation()}
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    size, resident = (int(status[key].split()[0]) * 1024 for key in ("VmSize", "VmRSS"))
    resource.setrlimit(resource.RLIMIT_AS, (size + limit - resident, resource.RLIM_INFINITY))

    dataset = FolderSplit(str(manifest))
    table = ResultsTable(work / "results.jsonl")
    run(editor, dataset, table, RunSpec("instdiffedit", "big", 0, image_dir=work / "images"), metrics=metrics)
    [row] = table.rows()
    assert row["status"] == "ok", row.get("error")
    assert 0 <= row["bg_ssim"] <= 1 and row["changing_rate"] > 0, row
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    """
)


@pytest.mark.slow
def test_a_6000_by_4000_item_on_the_tiny_model_peaks_under_3_gb(tmp_path: Path, _private_cache: Path) -> None:
    height, width = 4000, 6000
    rows, columns = np.mgrid[0:height, 0:width]
    pixels = np.stack([rows * 255 // height, columns * 255 // width, (rows + columns) % 256], axis=-1).astype(np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "photo.jpg", quality=85)
    mask = np.zeros((height, width), np.uint8)
    mask[1000:3000, 2000:4500] = 255
    PIL.Image.fromarray(mask).save(tmp_path / "mask.png")
    del rows, columns, pixels, mask
    (tmp_path / "items.csv").write_text("image,mask,source,target\nphoto.jpg,mask.png,a wall,a window\n")
    environment = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # glibc's per-thread arenas reserve address space they never use
    result = subprocess.run(
        [sys.executable, "-c", ITEM, str(tmp_path / "items.csv"), str(tmp_path), str(_private_cache), str(LIMIT)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split()[-1])
    assert peak < LIMIT, f"peak resident memory {peak / 2**30:.2f} GB"


@pytest.fixture
def tiny_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few rows, so that a small image is measured in many of them."""
    monkeypatch.setattr(functional, "TILE_PIXELS", 1000)
    monkeypatch.setattr(functional, "SSIM_TILE_PIXELS", 1000)
    monkeypatch.setattr(functional, "WHOLE_SSIM_PIXELS", 0)


def _pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(3, 90, 70, generator=generator)
    edited = (source + 0.2 * torch.rand(3, 90, 70, generator=generator)).clamp(0, 1)
    mask = torch.zeros(90, 70)
    mask[20:50, 10:40] = 1
    return source, edited, mask


def test_metrics_measured_band_by_band_equal_those_of_the_whole_image(tiny_bands: None) -> None:
    source, edited, mask = _pair()
    outside = 1 - mask
    keep = (mask <= 0.5).float()
    whole_ssim = float(structural_similarity_index_measure((edited * keep)[None], (source * keep)[None], data_range=1.0))
    assert functional.ssim_outside(source, edited, mask) == pytest.approx(whole_ssim, abs=1e-6)
    squared = (edited.double() - source.double()) ** 2
    assert functional.mse(source, edited, outside) == pytest.approx(squared[:, outside > 0.5].mean().item(), rel=1e-12)
    change = (edited.double() - source.double()).abs()
    rate = change[:, mask > 0.5].mean().item() / change[:, mask <= 0.5].mean().item()
    assert functional.changing_rate(source, edited, mask) == pytest.approx(rate, rel=1e-12)
