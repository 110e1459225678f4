"""The report: tables whose numbers are pandas' on the same rows, every figure written, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest

from benchmarks.report import Reporter, ReportError, build_report, load_results, mean_ci
from benchmarks.report.__main__ import main
from benchmarks.run.folder import RunFolder
from benchmarks.run.grid import qualitative_grid
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[1]
ITEMS = [f"toy-{i:05d}" for i in range(5)]


def _config_rows(dataset: str, method: str, config_id: str, params: dict, seed: int, **extra) -> list[dict]:
    """Rows of one configuration with known random metrics; item 1 is flagged, and ``failed`` items failed."""
    rng = np.random.default_rng(seed)
    failed = extra.pop("failed", ())
    rows = []
    for index, item_id in enumerate(ITEMS):
        row = {
            "item_id": item_id,
            "method": method,
            "config_id": config_id,
            "dataset": dataset,
            "seed": index,
            "param.model": "tiny",
            **{f"param.{k}": v for k, v in params.items()},
        }
        if item_id in failed:
            row.update(status="failed", error="RuntimeError: simulated", seconds=0.1)
        else:
            row.update(
                status="ok",
                flags="mask resized" if index == 1 else "",
                seconds=float(rng.uniform(1, 3)),
                denoiser_evals=extra.get("denoiser_evals", 252),
                batch_size=4,
                finished_at=1.7e9 + index,
                target=f"a blue square {index}",
                source="a red circle",
                changing_rate=float(rng.uniform(0.5, 2)),
                bg_psnr=float(rng.uniform(10, 30)),
            )
            if extra.get("masks", True):
                row["mask_iou"] = float(rng.uniform(0, 100))
            for name in extra.get("more", ()):
                row[name] = float(rng.uniform(0, 1))
        rows.append(row)
    return rows


def _write_images(run_dir: Path, steps: bool) -> None:
    images = run_dir / "images"
    images.mkdir(parents=True)
    for item_id in ITEMS:
        PIL.Image.new("RGB", (16, 16), (200, 40, 40)).save(images / f"{item_id}.input.png")
        PIL.Image.new("L", (16, 16), 255).save(images / f"{item_id}.gt.png")
        PIL.Image.new("L", (16, 16), 255).save(images / f"{item_id}.mask.png")
        PIL.Image.new("RGB", (16, 16), (40, 40, 200)).save(images / f"{item_id}.png")
        if steps:
            np.savez_compressed(images / f"{item_id}.steps.npz", masks=np.eye(4, dtype=bool)[None].repeat(6, axis=0))


def _run(root: Path, folder: str, rows: list[dict], steps: bool = False, corpus: dict | None = None, split: list[str] = ITEMS) -> Path:
    run_dir = root / folder
    table = ResultsTable(run_dir / "results.jsonl")
    for row in rows:
        table.append(row)
    RunFolder(run_dir).write_item_ids(split)
    _write_images(run_dir, steps)
    if corpus:
        key = rows[0]["method"], rows[0]["config_id"]
        pd.DataFrame([{"method": key[0], "config_id": key[1], **corpus}]).to_csv(run_dir / "summary.csv", index=False)
    return run_dir


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a multirun's: a phi sweep and two baselines on toy_shapes, runs on Editing-Mask and Imagen."""
    root = tmp_path_factory.mktemp("outputs")
    toy = "tiny/toy_shapes"
    for seed, phi in enumerate((0.1, 0.2, 0.3)):
        folder = f"{toy}/instdiffedit/dataset.n=5" if phi == 0.2 else f"{toy}/instdiffedit/dataset.n=5,method.threshold={phi}"
        _run(
            root,
            folder,
            _config_rows("toy_shapes", "instdiffedit", f"phi{phi}", {"threshold": phi, "strength": 0.5}, seed, failed={"toy-00004"} if phi == 0.1 else ()),
            steps=True,
        )
    _run(root, f"{toy}/diffedit/dataset.n=5", _config_rows("toy_shapes", "diffedit", "de", {"threshold": 0.3}, 7, denoiser_evals=1102))
    _run(root, f"{toy}/sdedit/dataset.n=5", _config_rows("toy_shapes", "sdedit", "sd", {"strength": 0.5}, 8, masks=False, denoiser_evals=52))
    _run(root, "tiny/editing_mask/instdiffedit/default", _config_rows("editing_mask", "instdiffedit", "em", {"threshold": 0.2}, 9))
    _run(
        root,
        "tiny/imagen/instdiffedit/default",
        _config_rows("imagen", "instdiffedit", "im", {"threshold": 0.2}, 10, masks=False, more=("lpips", "clip_score")),
        corpus={"fid": 123.4},
    )
    return root


@pytest.fixture(scope="module")
def rows(results_root: Path) -> pd.DataFrame:
    frame = pd.concat([pd.read_json(p, lines=True) for p in sorted(results_root.rglob("results.jsonl"))])
    frame["flags"] = frame["flags"].fillna("")
    return frame


@pytest.fixture(scope="module")
def reporter(results_root: Path) -> Reporter:
    return Reporter(load_results([results_root]), resamples=500)


def _ours(table) -> pd.DataFrame:
    return table.numbers[table.numbers["source"] == "ours"].set_index("config_id")


def test_split_table_means_and_counts_are_pandas_on_the_same_rows(reporter: Reporter, rows: pd.DataFrame) -> None:
    table = reporter.split_table("toy_shapes")
    numbers = _ours(table)
    toy = rows[rows["dataset"] == "toy_shapes"]
    ok = toy[toy["status"] == "ok"]
    for metric in ("mask_iou", "changing_rate", "bg_psnr", "seconds", "denoiser_evals"):
        expected = ok.groupby("config_id")[metric].mean()
        pd.testing.assert_series_equal(numbers[metric].dropna().sort_index(), expected.dropna().sort_index(), check_names=False)
    assert numbers["items"].to_dict() == toy.groupby("config_id").size().to_dict()
    assert numbers.loc["phi0.1", "failed"] == 1 and numbers.loc["phi0.2", "failed"] == 0
    assert (numbers["flagged"] == 1).all()
    assert np.isnan(numbers.loc["sd", "mask_iou"]), "SDEdit has no mask: its IoU is n/a, not 0"


def test_intervals_bracket_the_mean_within_the_items_range(reporter: Reporter, rows: pd.DataFrame) -> None:
    numbers = _ours(reporter.split_table("toy_shapes"))
    values = rows[(rows["config_id"] == "de") & (rows["status"] == "ok")]["mask_iou"]
    low, mean, high = numbers.loc["de", ["mask_iou_low", "mask_iou", "mask_iou_high"]]
    assert values.min() <= low < mean < high <= values.max()


def test_the_markdown_and_latex_show_the_numbers_the_table_holds(reporter: Reporter) -> None:
    table = reporter.split_table("toy_shapes")
    row = _ours(table).loc["de"]
    shown = f"{row['mask_iou']:.1f} [{row['mask_iou_low']:.1f}, {row['mask_iou_high']:.1f}]"
    assert shown in table.markdown() and shown in table.latex()
    assert "diffedit" in table.markdown() and "instdiffedit (threshold=0.1)" in table.markdown()
    assert "our definition" in table.markdown(), "the changing rate's definition goes with the number"


def test_published_numbers_sit_beside_ours_and_are_marked(reporter: Reporter) -> None:
    table = reporter.split_table("editing_mask")
    published = table.numbers[table.numbers["source"] == "published"].set_index("method")
    assert published.loc["instdiffedit", "mask_iou"] == 56.2 and published.loc["diffedit", "mask_iou"] == 33.0
    assert "instdiffedit (published)" in table.markdown() and "paper's numbers, not ours" in table.markdown()
    assert list(table.display.columns[:5]) == ["Method", "items", "failed", "flagged", "mask IoU (%)"]


def test_corpus_metrics_come_from_the_runs_summary(reporter: Reporter) -> None:
    table = reporter.split_table("imagen")
    assert _ours(table).loc["im", "fid"] == 123.4
    assert table.numbers[table.numbers["source"] == "published"].set_index("method").loc["instdiffedit", "fid"] == 55.3
    assert "no interval" in table.markdown()


def test_speed_is_relative_to_instdiffedits_main_configuration(reporter: Reporter, rows: pd.DataFrame) -> None:
    numbers = _ours(reporter.speed_table())
    ok = rows[rows["status"] == "ok"].groupby("config_id")["seconds"].mean()
    # phi = 0.2 ran without a method.* override: it is InstDiffEdit's main configuration.
    assert numbers.loc["de", "seconds_vs_instdiffedit"] == pytest.approx(ok["de"] / ok["phi0.2"])
    assert numbers.loc["de", "denoiser_evals_vs_instdiffedit"] == pytest.approx(1102 / 252)


def test_a_sweep_value_equal_to_the_default_leaves_the_default_run_the_main_configuration(tmp_path: Path) -> None:
    # `python run.py dataset.n=5` and `python run.py -m dataset.n=5 method.threshold=0.1,0.2` with 0.2 the
    # default: the sweep's 0.2 is the default run's configuration again, read from two folders.
    root, toy = tmp_path / "outputs", "tiny/toy_shapes/instdiffedit"
    default = _config_rows("toy_shapes", "instdiffedit", "phi0.2", {"threshold": 0.2}, 0)
    _run(root, f"{toy}/dataset.n=5", default)
    _run(root, f"{toy}/dataset.n=5,method.threshold=0.2", default)
    _run(root, f"{toy}/dataset.n=5,method.threshold=0.1", _config_rows("toy_shapes", "instdiffedit", "phi0.1", {"threshold": 0.1}, 1))
    configs = Reporter(load_results([root]), resamples=50).configs.set_index("config_id")
    assert configs.at["phi0.2", "main"] and not configs.at["phi0.1", "main"]
    assert configs.at["phi0.2", "run_dirs"] == {str(root / toy / "dataset.n=5"), str(root / toy / "dataset.n=5,method.threshold=0.2")}


def test_a_sweep_gives_an_ablation_table_over_the_swept_values(reporter: Reporter, rows: pd.DataFrame) -> None:
    (table,) = reporter.ablation_tables()
    assert table.name == "ablation_threshold"
    numbers = table.numbers.set_index("threshold")
    assert list(numbers.index) == [0.1, 0.2, 0.3]
    ok = rows[(rows["status"] == "ok") & (rows["method"] == "instdiffedit") & (rows["dataset"] == "toy_shapes")]
    expected = ok.groupby("param.threshold")["mask_iou"].mean()
    np.testing.assert_allclose(numbers["mask_iou"], expected.to_numpy())


def test_the_report_writes_every_table_and_figure(results_root: Path, tmp_path: Path) -> None:
    report = build_report([results_root], tmp_path / "report", resamples=200)
    tables = {p.name for p in (tmp_path / "report" / "tables").iterdir()}
    for name in ("toy_shapes", "editing_mask", "imagen", "speed", "ablation_threshold"):
        assert {f"{name}.md", f"{name}.tex", f"{name}.csv"} <= tables
    figures = {p.name: p for p in (tmp_path / "report" / "figures").iterdir()}
    for name in ("qualitative_tiny_toy_shapes", "ablation_threshold", "speed_vs_iou_tiny_toy_shapes", "mask_evolution_tiny_toy_shapes"):
        for ext in ("png", "pdf"):
            assert figures[f"{name}.{ext}"].stat().st_size > 1000, f"{name}.{ext} is empty"
    with PIL.Image.open(figures["qualitative_tiny_toy_shapes.png"]) as grid:
        assert grid.width > grid.height  # 5 items would be taller: 4 random items x (2 + 2 x 3 methods) panels
    assert "mask evolution of tiny/editing_mask" in " ".join(report.skipped)  # no per-step masks saved there
    assert "![qualitative_tiny_toy_shapes]" in (tmp_path / "report" / "README.md").read_text()


def test_bootstrap_intervals_are_seeded_and_honest_about_small_samples() -> None:
    values = np.array([1.0, 2.0, 4.0, 8.0, np.nan])
    assert mean_ci(values, seed=3) == mean_ci(values, seed=3)
    assert mean_ci(values)[0] == pytest.approx(3.75)  # nan = undefined for the item, left out
    assert mean_ci([5.0, 5.0]) == (5.0, 5.0, 5.0)
    assert np.isnan(mean_ci([5.0])[1]) and np.isnan(mean_ci([1.0, np.inf])[1]) and np.isnan(mean_ci([])[0])


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: p.mkdir(), "No results files"),
        (lambda p: None, "does not exist"),
        (lambda p: (p.mkdir(), (p / "results.jsonl").write_text("")), "hold no rows yet"),
        (lambda p: (p.mkdir(), (p / "results.jsonl").write_text(json.dumps({"item_id": "a"}) + "\n")), "lacks the key column(s) method"),
    ],
    ids=["empty folder", "missing folder", "empty results file", "missing columns"],
)
def test_unusable_input_gets_one_sentence_and_no_traceback(tmp_path: Path, capsys, setup, message: str) -> None:
    folder = tmp_path / "runs"
    setup(folder)
    assert main([str(folder), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    with pytest.raises(ReportError):
        load_results([folder])


def test_a_partial_run_is_reported_with_its_counts(tmp_path: Path) -> None:
    rows = _config_rows("toy_shapes", "instdiffedit", "c", {"threshold": 0.2}, 0, failed=set(ITEMS[1:]))
    table = ResultsTable(tmp_path / "run" / "results.jsonl")
    for row in rows:
        table.append(row)
    with (tmp_path / "run" / "results.jsonl").open("a") as f:
        f.write('{"item_id": "torn')  # a run interrupted mid-line
    report = build_report([tmp_path / "run"], tmp_path / "report", resamples=100)
    numbers = report.tables[0].numbers.iloc[0]
    assert (numbers["items"], numbers["failed"]) == (5, 4)
    assert "qualitative grid" in " ".join(report.skipped)  # no images saved: said, not crashed


def test_bookkeeping_columns_are_not_metric_columns(reporter: Reporter) -> None:
    table = reporter.split_table("toy_shapes")
    for column in ("batch_size", "finished_at", "seed"):
        assert column not in table.numbers and column not in table.display, column


def test_runs_that_differ_only_in_the_splits_size_are_labelled_by_it_and_make_no_ablation(tmp_path: Path) -> None:
    for n in (2, 3, 5):
        rows = _config_rows("toy_shapes", "instdiffedit", f"n{n}", {"threshold": 0.2, "dataset.n": n}, n)[:n]
        _run(tmp_path, f"tiny/toy_shapes/instdiffedit/dataset.n={n}", rows, split=ITEMS[:n])
    reporter = Reporter(load_results([tmp_path]), resamples=100)
    labels = _ours(reporter.split_table("toy_shapes"))["label"].to_dict()
    assert labels == {f"n{n}": f"instdiffedit (dataset.n={n})" for n in (2, 3, 5)}
    assert reporter.ablation_tables() == []


def test_a_setting_left_null_is_labelled_as_its_override_is_typed(tmp_path: Path) -> None:
    # `python run.py method=oracle_inpaint` (inpaint_guidance_scale: null, the pipeline's own) beside `... =3`.
    for config_id, scale in (("own", None), ("three", 3.0)):
        rows = _config_rows("toy_shapes", "oracle_inpaint", config_id, {"inpaint_guidance_scale": scale}, 0)
        _run(tmp_path, f"tiny/toy_shapes/oracle_inpaint/{config_id}", rows)
    labels = _ours(Reporter(load_results([tmp_path]), resamples=100).split_table("toy_shapes"))["label"].to_dict()
    assert labels == {"own": "oracle_inpaint (inpaint_guidance_scale=null)", "three": "oracle_inpaint (inpaint_guidance_scale=3)"}


def test_configurations_that_no_setting_tells_apart_are_labelled_by_their_config_id(tmp_path: Path) -> None:
    for config_id in ("aaa", "bbb"):  # rows of older runs: no param.dataset.* columns
        _run(tmp_path, f"tiny/toy_shapes/instdiffedit/{config_id}", _config_rows("toy_shapes", "instdiffedit", config_id, {"threshold": 0.2}, 0))
    labels = _ours(Reporter(load_results([tmp_path]), resamples=100).split_table("toy_shapes"))["label"].to_dict()
    assert labels == {"aaa": "instdiffedit (config aaa)", "bbb": "instdiffedit (config bbb)"}


def test_a_run_with_fewer_items_than_its_split_is_marked_incomplete(tmp_path: Path) -> None:
    split = [f"toy-{i:05d}" for i in range(20)]
    _run(tmp_path, "tiny/toy_shapes/instdiffedit/default", _config_rows("toy_shapes", "instdiffedit", "c", {"threshold": 0.2}, 0), split=split)
    _run(tmp_path, "tiny/toy_shapes/diffedit/default", _config_rows("toy_shapes", "diffedit", "d", {"threshold": 0.3}, 1))
    table = Reporter(load_results([tmp_path]), resamples=100).split_table("toy_shapes")
    shown = table.display.set_index("Method")
    assert shown.loc["instdiffedit [incomplete]", "items"] == "5 of 20"
    assert shown.loc["diffedit", "items"] == "5"
    assert "[incomplete]" in table.markdown() and "items.txt" in table.markdown()


def test_the_qualitative_grid_prints_each_items_edit_text(results_root: Path) -> None:
    run_dir = results_root / "tiny/toy_shapes/diffedit/dataset.n=5"
    figure = qualitative_grid(ITEMS[:2], [("diffedit", [run_dir])], texts={ITEMS[0]: "a red circle -> a blue square"})
    shown = [text.get_text() for ax in figure.axes for text in (ax.xaxis.label, ax.yaxis.label)]
    assert "a red circle -> a blue square" in " ".join(shown).replace("\n", " ")


def test_the_reports_grid_takes_the_edit_texts_from_the_rows(results_root: Path) -> None:
    from benchmarks.report.build import edit_texts

    texts = edit_texts(load_results([results_root]).rows)
    assert texts["toy-00002"] == "a red circle → a blue square 2"


@pytest.mark.slow
def test_an_ablation_experiment_then_the_report_command(tmp_path: Path) -> None:
    """On the tiny model: a phi sweep by experiment, then the report command gives its table and curve."""
    sweep = subprocess.run(
        [
            sys.executable,
            "run.py",
            "-m",
            "experiment=ablation_phi",
            "model=tiny",
            "dataset=toy_shapes",
            "dataset.n=2",
            "logger=none",
            f"paths.output_root={tmp_path / 'outputs'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    runs = tmp_path / "outputs" / "tiny" / "toy_shapes" / "instdiffedit"
    assert sorted(p.name for p in runs.iterdir()) == [f"dataset.n=2,method.threshold={v}" for v in ("0.1", "0.2", "0.3")]
    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(tmp_path / "outputs"), "--out", str(tmp_path / "report")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    out = tmp_path / "report"
    assert (out / "tables" / "ablation_threshold.md").is_file() and (out / "tables" / "toy_shapes.md").is_file()
    assert (out / "figures" / "ablation_threshold.png").stat().st_size > 1000
    assert (out / "figures" / "mask_evolution_tiny_toy_shapes.png").is_file()
    ablation = pd.read_csv(out / "tables" / "ablation_threshold.csv")
    assert list(ablation["threshold"]) == [0.1, 0.2, 0.3] and (ablation["items"] == 2).all()


def test_a_report_of_a_run_whose_items_all_failed_says_so_and_exits_non_zero(tmp_path: Path, capsys) -> None:
    run_dir = _run(tmp_path / "outputs", "tiny/toy_shapes/instdiffedit/default", _config_rows("toy_shapes", "instdiffedit", "c0", {}, 0, failed=ITEMS))

    assert main([str(run_dir), "--out", str(tmp_path / "report")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: every item of instdiffedit c0 in {run_dir} failed (5 of 5); the first error: RuntimeError: simulated"]
    index = (tmp_path / "report" / "README.md").read_text()
    assert "Every item failed in instdiffedit: no metric to show" in index
    assert "Not measured in these runs" not in index, "its metrics were not left unmeasured: every edit failed"
