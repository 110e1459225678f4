"""The results browser: every item and configuration on its split's page, every table on the index,
no URL that leaves the site, every string from run folders escaped; in a real headless Chromium
(slow): pages render without console errors and sorting by mask IoU puts the lowest first."""

from __future__ import annotations

import html.parser
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import PIL.Image
import pytest

from benchmarks.report import build_report, load_results
from benchmarks.report.__main__ import main
from benchmarks.report.site.chromium import Chromium, find_chromium
from benchmarks.run.folder import EDIT, GROUND_TRUTH, INPUT, MASK, STEPS, RunFolder
from benchmarks.run.item_view import THUMBNAIL_SIDE, item_view, steps_strip, view_image
from benchmarks.run.results import ResultsTable

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = """x<img src=x onerror="alert('id')">&amp;"""
"""An item id a run folder may hold (any file name): it must show as text, never as markup."""
ITEMS = ["pie-000", "pie-001", HOSTILE, "pie-003"]


class Elements(html.parser.HTMLParser):
    """Every start tag of a page as (tag, attributes), and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in wanted.items())]


def _rows(method: str, config_id: str, params: dict, seed: int, failed: str | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for index, item_id in enumerate(ITEMS):
        row = {
            "item_id": item_id,
            "method": method,
            "config_id": config_id,
            "dataset": "pie_bench",
            "seed": index,
            "param.model": "tiny",
            **{f"param.{k}": v for k, v in params.items()},
        }
        if item_id == failed:
            row.update(status="failed", error="RuntimeError: <b>boom</b>", seconds=0.5)
        else:
            row.update(
                status="ok",
                flags="mask resized" if index == 1 else "",
                seconds=float(rng.uniform(1, 2)),
                source="a cat <sitting>",
                target='a "dog" & friends',
                **{"meta.edit_type": str(index % 2), "meta.edit_type_name": ["random", "change object"][index % 2]},
                mask_iou=float(rng.uniform(0, 100)),
                bg_psnr=float(rng.uniform(10, 30)),
            )
        rows.append(row)
    return rows


def _run(root: Path, folder: str, rows: list[dict], steps: bool = False) -> Path:
    run_dir = root / folder
    table = ResultsTable(run_dir / "results.jsonl")
    for row in rows:
        table.append(row)
    RunFolder(run_dir).write_item_ids(ITEMS)
    images = RunFolder(run_dir).images
    images.path.mkdir(parents=True)
    for row in rows:
        if row["status"] != "ok":
            continue
        item_id = row["item_id"]
        images.file(item_id, INPUT).parent.mkdir(exist_ok=True)
        PIL.Image.new("RGB", (300, 200), (200, 40, 40)).save(images.file(item_id, INPUT))
        PIL.Image.new("RGB", (300, 200), (40, 40, 200)).save(images.file(item_id, EDIT))
        PIL.Image.new("L", (300, 200), 255).save(images.file(item_id, GROUND_TRUTH))
        PIL.Image.new("L", (64, 64), 255).save(images.file(item_id, MASK))
        if steps:
            np.savez_compressed(images.file(item_id, STEPS), masks=np.eye(8, dtype=bool)[None].repeat(10, axis=0))
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(f"method:\n  name: {rows[0]['method']}  # <i>not markup</i>\n")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A threshold sweep of InstDiffEdit (one value failing one item) and DiffEdit, on a PIE-Bench-like split."""
    root = tmp_path_factory.mktemp("outputs")
    for seed, threshold in enumerate((0.1, 0.2)):
        _run(
            root,
            f"tiny/pie_bench/instdiffedit/method.threshold={threshold}",
            _rows("instdiffedit", f"t{threshold}", {"threshold": threshold}, seed, failed="pie-003" if threshold == 0.1 else None),
            steps=True,
        )
    _run(root, "tiny/pie_bench/diffedit/default", _rows("diffedit", "de", {"threshold": 0.3}, 5))
    return root


@pytest.fixture(scope="module")
def site(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report([runs], out / "report", html=out / "site", resamples=50)
    return out / "site"


def _page(site: Path, name: str) -> Elements:
    return Elements((site / name).read_text(encoding="utf-8"))


def test_the_split_page_shows_every_item_with_every_configurations_mask_output_and_metrics(runs: Path, site: Path) -> None:
    page = _page(site, "items-tiny-pie_bench.html")
    rows = load_results([runs]).rows
    configs = [a["data-config"] for a in page.find("th") if a.get("data-config")]
    assert configs == ["instdiffedit-threshold-0.1", "instdiffedit-threshold-0.2", "diffedit"], "a sweep is one browser, a column per value"
    assert sorted(a["data-item"] for a in page.find("tr") if a.get("data-item") is not None) == sorted(ITEMS)
    cells: dict[str, list[str]] = defaultdict(list)  # per item, its configuration cells in order
    shown: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)  # per (item, config): its images and metrics
    for tag, attrs in page.tags:
        if tag == "tr" and attrs.get("data-item") is not None:
            item, config = attrs["data-item"], None
        elif tag == "td" and attrs.get("data-config"):
            config = attrs["data-config"]
            cells[item].append(config)
        elif tag == "img" and config:
            shown[item, config][attrs["class"]] = attrs["src"]
        elif tag == "dd" and config:
            shown[item, config][attrs["data-metric"]] = attrs["data-value"]
    assert len(cells) == len(ITEMS) and all(found == configs for found in cells.values())
    for _, row in rows.iterrows():
        config = {"t0.1": configs[0], "t0.2": configs[1], "de": configs[2]}[row["config_id"]]
        if row["status"] == "ok":
            assert {"mask", "output"} <= set(shown[row["item_id"], config])
            assert float(shown[row["item_id"], config]["mask_iou"]) == row["mask_iou"]
            assert ("steps" in shown[row["item_id"], config]) == (row["method"] == "instdiffedit"), "InstDiffEdit's per-step masks"
        else:
            assert "output" not in shown[row["item_id"], config] and "mask_iou" not in shown[row["item_id"], config]
    assert len(page.find("td", data_status="failed")) == 1 and len(page.find("td", data_flagged="1")) == 3
    assert {a["value"] for a in page.find("option")} >= {"0 random", "1 change object"}, "filter by edit type"


def test_every_url_in_the_site_stays_inside_it_and_names_a_file_there(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 5
    for path in pages:
        for tag, attrs in Elements(path.read_text(encoding="utf-8")).tags:
            for name in ("src", "href"):
                url = attrs.get(name)
                if url is None:
                    continue
                parts = urlsplit(url)
                assert not parts.scheme and not parts.netloc and not url.startswith("//"), f"{path.name}: <{tag} {name}={url!r}>"
                target = (path.parent / unquote(parts.path)).resolve()
                assert target.is_relative_to(site.resolve()) and target.is_file(), f"{path.name}: {url} is no file of the site"
    script = (site / "assets" / "browser.js").read_text()
    assert not any(word in script for word in ("http:", "https:", "fetch(", "XMLHttpRequest", "import(")), "the script reads nothing"
    assert "url(" not in (site / "assets" / "site.css").read_text() and "@import" not in (site / "assets" / "site.css").read_text()


def test_strings_from_run_folders_are_text_never_markup(site: Path) -> None:
    for path in site.rglob("*.html"):
        page = path.read_text(encoding="utf-8")
        assert "<img src=x" not in page and "<b>boom" not in page and "<i>not markup" not in page and "<sitting>" not in page
    text = "".join(_page(site, "items-tiny-pie_bench.html").texts)
    assert HOSTILE in text and 'a cat <sitting> → a "dog" & friends' in text and "RuntimeError: <b>boom</b>" in text


def test_the_index_holds_every_table_sortable_with_our_numbers_linked_to_their_configuration(site: Path) -> None:
    index = _page(site, "index.html")
    written = sorted(p.stem for p in (site.parent / "report" / "tables").glob("*.csv"))
    assert sorted(a["data-table"] for a in index.find("table", class_="sortable")) == written and "pie_bench_by_edit_type" in written
    links = {a["href"] for a in index.find("a")}
    assert "items-tiny-pie_bench.html" in links
    config_pages = sorted(p.relative_to(site).as_posix() for p in (site / "configs").glob("*.html"))
    assert len(config_pages) == 3 and set(config_pages) <= links
    page = (site / config_pages[0]).read_text()
    assert "&lt;i&gt;not markup&lt;/i&gt;" in page, "the run's saved Hydra config, as text"
    assert {a["src"] for a in index.find("img")} == {f"figures/{p.name}" for p in (site / "figures").glob("*.png")} != set()


def test_thumbnails_are_bounded_and_masks_keep_hard_edges(site: Path, runs: Path) -> None:
    thumbs = [p for p in (site / "thumbs").rglob("*") if p.is_file()]
    assert thumbs
    for path in thumbs:
        with PIL.Image.open(path) as image:
            assert max(image.size) <= 3 * THUMBNAIL_SIDE if ".steps" in path.name else max(image.size) <= THUMBNAIL_SIDE
    mask = view_image(next(runs.rglob(f"*{GROUND_TRUTH}")))
    assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_a_step_strip_shows_the_first_and_last_step_side_by_side() -> None:
    masks = np.zeros((20, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[-1, 3, 3] = True
    strip = np.asarray(steps_strip(masks, steps=3))
    assert strip.shape == (4, 3 * 4 + 2 * 2)
    assert strip[0, 0] == 255 and strip[3, -1] == 255 and strip[:, 4:6].tolist() == [[128, 128]] * 4


def test_the_item_view_names_each_items_files_and_is_empty_for_no_rows(runs: Path) -> None:
    run_dir = runs / "tiny/pie_bench/instdiffedit/method.threshold=0.1"
    rows = load_results([run_dir]).rows
    view = item_view(rows, [run_dir]).set_index("item_id")
    assert view.at["pie-000", "output"] == RunFolder(run_dir).images.file("pie-000", EDIT)
    assert view.at["pie-003", "status"] == "failed" and view.at["pie-003", "output"] is None and np.isnan(view.at["pie-003", "mask_iou"])
    assert view.at["pie-001", "edit_type"] == "1 change object"
    assert item_view(rows.iloc[:0], [run_dir]).empty


def test_the_report_command_writes_the_site(runs: Path, tmp_path: Path) -> None:
    assert main([str(runs), "--out", str(tmp_path / "report"), "--html", str(tmp_path / "site"), "--resamples", "20"]) == 0
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "items-tiny-pie_bench.html").is_file()


# -- in a real browser -------------------------------------------------------------------------

CHROMIUM = find_chromium()
METHODS = ("instdiffedit", "diffedit", "sdedit")


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three methods on three items of the toy split (the tiny model, 10 steps), then the report command with --html."""
    root = tmp_path_factory.mktemp("browser")
    runs = [("-m", "method=instdiffedit,diffedit", "method.inpaint_steps=4", "method.num_noises=2"), ("method=sdedit",)]
    for args in runs:
        done = subprocess.run(
            [
                sys.executable,
                "run.py",
                *args,
                "model=tiny",
                "dataset=toy_shapes",
                "dataset.n=3",
                "method.num_inference_steps=10",
                "logger=none",
                f"paths.output_root={root / 'outputs'}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(root / "outputs"), "--out", str(root / "report"), "--html", str(root / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    return root


ROW_ORDER = "Array.from(document.querySelectorAll('table.items tbody tr'), (row) => row.dataset.item)"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (make install installs Debian's chromium where apt is available)")
def test_the_site_in_headless_chromium(toy_site: Path, tmp_path: Path) -> None:
    site = toy_site / "site"
    rows = load_results([toy_site / "outputs"]).rows
    iou = rows[rows["method"] == "instdiffedit"].set_index("item_id")["mask_iou"]
    with Chromium(CHROMIUM) as browser:
        index = browser.open((site / "index.html").as_uri())
        assert index.evaluate("document.querySelectorAll('table.sortable').length") >= 2
        assert index.errors == []

        page = browser.open((site / "items-tiny-toy_shapes.html").as_uri())
        assert sorted(page.evaluate(ROW_ORDER)) == sorted(iou.index)
        shown = page.evaluate("""Promise.all(Array.from(document.querySelectorAll('td[data-config] img'), (image) => {
            image.loading = 'eager';
            return image.decode().then(() => [image.closest('tr').dataset.item, image.closest('td').dataset.config,
                                               image.className, image.naturalWidth]);
        }))""")
        for item in iou.index:
            for method in METHODS:
                kinds = {kind for i, config, kind, width in shown if i == item and config == method and width > 0}
                assert {"output"} | ({"mask"} if method != "sdedit" else set()) <= kinds, (item, method, kinds)

        page.evaluate("document.querySelector('button[data-sort=\"instdiffedit:mask_iou\"]').click()")
        assert page.evaluate(ROW_ORDER) == list(iou.sort_values().index), "one click: lowest mask IoU first"
        page.evaluate("document.querySelector('button[data-sort=\"instdiffedit:mask_iou\"]').click()")
        assert page.evaluate(ROW_ORDER) == list(iou.sort_values(ascending=False).index), "again: highest first"
        shot = page.screenshot(tmp_path / "items.png")
        assert page.errors == []

        linked = browser.open((site / "items-tiny-toy_shapes.html").as_uri() + "#sort=instdiffedit:mask_iou&per=10")
        assert linked.evaluate(ROW_ORDER) == list(iou.sort_values().index), "the fragment's sort holds on opening"
        assert linked.errors == []
        requested = index.requests + page.requests + linked.requests
        assert requested and all(url.startswith(site.as_uri()) for url in requested), [u for u in requested if not u.startswith(site.as_uri())]
    with PIL.Image.open(shot) as image:
        assert image.size == (1400, 900)
