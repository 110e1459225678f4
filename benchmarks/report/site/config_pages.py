"""A page per configuration: its settings, run folders and the Hydra config its run saved.

Every number of the index's tables links to its configuration's page, and so does each column
of the item browsers; the run's own files are copied in as text, so no link leaves the site.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.report.site.markup import join, page, tag, text, unique_names
from benchmarks.report.stats import CONFIG

FOLDER = "configs"
HYDRA_DIR = ".hydra"
SHOWN_FILES = ("overrides.yaml", "config.yaml")
"""Of what Hydra saves for a job (:data:`benchmarks.run.folder.HYDRA_SAVED_FILES`), what a config page shows."""


def hydra_files(run_dirs: Sequence[str | Path]) -> dict[str, str]:
    """The text of :data:`SHOWN_FILES` that Hydra saved for the first run folder holding them
    (``.hydra/``, or a shard's ``.hydra/shard-000-of-004/``); empty when none does."""
    for run_dir in map(Path, run_dirs):
        saved = Path(run_dir) / HYDRA_DIR
        for folder in [saved, *sorted(saved.glob("shard-*"))]:
            if (folder / "config.yaml").is_file():
                return {name: (folder / name).read_text(encoding="utf-8", errors="replace") for name in SHOWN_FILES if (folder / name).is_file()}
    return {}


def _value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_page(config: pd.Series) -> str:
    """The page of one row of :func:`benchmarks.report.configs.describe_configs`."""
    facts = [
        ("model", config["model"]),
        ("split", config["dataset"]),
        ("method", config["method"]),
        ("config id", config["config_id"]),
        ("items done", config["ok"]),
    ]
    settings = [
        (name.removeprefix("param."), _value(v)) for name, v in config.items() if str(name).startswith("param.") and not (isinstance(v, float) and pd.isna(v))
    ]
    rows = join(tag("tr", tag("th", text(k), scope="row") + tag("td", text(v))) for k, v in facts + settings)
    folders = join(tag("li", tag("code", text(d))) for d in sorted(config["run_dirs"]))
    parts = [
        tag("nav", tag("a", "← report", href="../index.html")),
        tag("h1", text(config["label"])),
        tag("table", tag("tbody", rows), class_="facts"),
        tag("h2", "Run folders"),
        tag("ul", folders),
    ]
    for name, content in hydra_files(sorted(config["run_dirs"])).items():
        parts += [tag("h2", text(name)), tag("pre", text(content))]
    return page(f"{config['label']} ({config['model']}, {config['dataset']})", tag("main", join(parts)), root="../")


def write_config_pages(configs: pd.DataFrame, site: Path) -> dict[tuple, str]:
    """A page per configuration under ``configs/``; per configuration key (:data:`CONFIG`), its path relative to ``site``."""
    folder = site / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    keys = [tuple(config[c] for c in CONFIG) for _, config in configs.iterrows()]
    names = unique_names(f"{model}-{dataset}-{label}" for (model, dataset, *_), label in zip(keys, configs["label"]))
    pages = {}
    for key, (_, config), name in zip(keys, configs.iterrows(), names):
        (folder / f"{name}.html").write_text(config_page(config), encoding="utf-8")
        pages[key] = f"{FOLDER}/{name}.html"
    return pages
