"""The documents: a short README, the guides in docs/, generated tables only in the guides, and
documents that speak of the project alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {"docs/speed.md": ("speed-table", "speed-backbones"), "docs/scaling.md": ("scaling",)}
"""Each guide with generated sections, and the sections' names (``benchmarks.perf.doc_sections``)."""

OFF_PROJECT = re.compile(r"issue [0-9]|issues[ ]show|\blent\b|\.\./shared|GPU[ ]calls", re.IGNORECASE)
"""Words about how the project was made rather than what it is: work items, borrowed machines, paths outside
it (the character classes keep this pattern from matching itself)."""


def _documents() -> list[Path]:
    """Every document, config and source file of the project (vocabulary files and this test aside)."""
    patterns = ("*.md", "conf/**/*.yaml", "Makefile", "run.py", "instdiffedit/**/*.py", "baselines/**/*.py", "benchmarks/**/*.py", "tests/*.py")
    found = {p for pattern in patterns for p in ROOT.glob(pattern)} | set(ROOT.glob("docs/**/*.md")) | set(ROOT.glob("*/**/README.md"))
    return sorted(p for p in found if p != Path(__file__).resolve() and not {".git", "outputs", ".venv"} & set(p.relative_to(ROOT).parts))


def test_the_readme_fits_in_250_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_generated_tables_live_in_the_guides_and_never_in_the_readme() -> None:
    assert ":begin -->" not in (ROOT / "README.md").read_text(encoding="utf-8")
    for guide, sections in GENERATED.items():
        text = (ROOT / guide).read_text(encoding="utf-8")
        for name in sections:
            assert text.count(f"<!-- {name}:begin -->") == text.count(f"<!-- {name}:end -->") == 1, (guide, name)


def test_the_benchmark_targets_write_into_the_guides() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--readme" not in makefile
    speed_runs = [line for line in makefile.splitlines() if "-m benchmarks.perf.speed" in line and "--out docs/speed" in line]
    assert speed_runs and all("--doc docs/speed.md" in line for line in speed_runs), speed_runs
    assert makefile.count("--doc docs/scaling.md") == 1


@pytest.mark.parametrize(
    "guide",
    ["index", "extending", "running", "splits", "metrics", "methods", "backbones", "speed", "scaling", "toy-world", "architecture", "reports", "testing"],
)
def test_the_readme_or_the_guide_list_links_each_guide(guide: str) -> None:
    assert (ROOT / "docs" / f"{guide}.md").is_file()
    linked = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert f"docs/{guide}.md" in linked or f"]({guide}.md)" in linked


def test_documents_speak_of_the_project_only() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _documents()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OFF_PROJECT.search(line)
    ]
    assert not hits, "\n".join(hits)
