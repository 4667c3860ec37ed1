"""notebooks/analysis.ipynb runs top to bottom against a run directory (the synthetic one here)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def execute_notebook(run_root, monkeypatch) -> tuple[str, list]:
    """Run the notebook against ``run_root``; returns (text of all outputs, plotly outputs)."""
    # the kernel inherits the environment: the run to open, and the checkout (for an uninstalled faceaudit)
    monkeypatch.setenv("FACEAUDIT_RUN", str(run_root))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    return text, plots


def test_notebook_executes(synthetic_run, monkeypatch):
    text, plots = execute_notebook(synthetic_run, monkeypatch)
    assert "protocol: synthetic" in text and "models: alpha, beta" in text
    assert "not computed" not in text  # every table of the synthetic run was shown
    assert len(plots) == 1


def test_notebook_executes_on_a_real_audit(quick_run, monkeypatch):
    text, plots = execute_notebook(quick_run, monkeypatch)
    assert "protocol: quick" in text and "models: dlib, sface" in text
    assert "not computed" not in text
    assert len(plots) == 1
