"""Every notebook in ``notebooks/`` runs top to bottom in a fresh kernel without an error.

The kernel is this interpreter (``sys.executable``) with this process's environment, so it imports
the ``ntkrs`` under test (installed in CI; through ``PYTHONPATH`` in a development checkout)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the notebooks run in)
import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, NOTEBOOKS


def test_notebooks_are_saved_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear its outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    # A private kernelspec running this interpreter: no user or system kernelspec can substitute another.
    spec_dir = tmp_path / "jupyter" / "kernels" / "ntkrs-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ntkrs test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if os.environ.get("PYTHONPATH"):  # the kernel runs in a temporary directory: make entries absolute
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(str(Path(p).resolve()) for p in entries if p))
    assert "ntkrs-test" in KernelSpecManager().find_kernel_specs()

    nb = nbformat.read(path, as_version=4)
    import ntkrs

    # First, check that the kernel imports the ntkrs under test (not another installed copy).
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        f"import ntkrs, os\nassert os.path.samefile(ntkrs.__file__, {ntkrs.__file__!r}), ntkrs.__file__"))
    client = nbclient.NotebookClient(nb, kernel_name="ntkrs-test", timeout=600, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
