"""The notebooks run top to bottom offline, on the shipped toy model."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_the_walkthrough_runs_top_to_bottom_on_the_toy_model() -> None:
    notebook = nbformat.read(NOTEBOOKS / "instdiffedit_walkthrough.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert 'MODEL = "toy"' in parameters.source
    parameters.source = parameters.source.replace("STEPS = 50", "STEPS = 10")  # 5 guided steps: the same code, faster
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, "attention maps, the edit, the mask evolution and the grid should be drawn"
    assert any("text/markdown" in o.get("data", {}) and "Toy shapes" in o["data"]["text/markdown"] for o in outputs)
