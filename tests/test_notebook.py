"""docs/tutorial.ipynb: committed without outputs, and run end to end on its tiny settings
(LSTM_VG_TUTORIAL_TINY=1) in a Jupyter kernel of this interpreter, showing its figures and numbers."""

import os

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from helpers import ROOT

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
FIGURES = 5  # gradient decay, heatmap, learning curves, sweep against T, spectrum
# Tiny runs are mostly XLA compilation (six batches of runs, each compiled once): a cheaper CPU
# backend pipeline cuts the kernel's CPU time by about a third; a tiny run's numbers mean nothing.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def outputs(notebook, kind: str) -> list:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


def test_tutorial_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{NOTEBOOK.name}: cell {cell.id} has outputs; clear them before committing " \
                f"(Jupyter: Edit → Clear Outputs of All Cells, then save)"


def test_tutorial_runs_on_tiny_settings_and_shows_its_figures_and_numbers(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # No kernel directories: "python3" is then ipykernel's own spec, i.e. sys.executable (this
    # venv), whatever other python3 kernels the user's Jupyter folders hold.
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    client = NotebookClient(notebook, km=kernel, timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    env = os.environ | {"LSTM_VG_TUTORIAL_TINY": "1", "LSTM_VG_TUTORIAL_OUT": str(tmp_path),
                        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()}
    client.execute(env=env)  # raises CellExecutionError, with the traceback, if a cell fails

    text = "".join(o.text for o in outputs(notebook, "stream") if o.name == "stdout")
    assert "tiny settings" in text
    assert "‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation" in text
    assert "λ₁ predicts" in text and "predicted / measured" in text
    results = outputs(notebook, "execute_result")
    assert sum("image/png" in o.data for o in results) == FIGURES
    assert any("text/markdown" in o.data and "| lstm |" in o.data["text/markdown"] for o in results)
    assert (tmp_path / "comparison").is_dir() and (tmp_path / "lengths").is_dir()
