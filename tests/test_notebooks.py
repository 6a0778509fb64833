"""Every notebook runs top to bottom on a fresh kernel at smoke scale (papermill injects the
parameters), reading the smoke results that `est repro all --scale smoke` wrote."""

from pathlib import Path

import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, smoke_repro, tmp_path):
    runs_root, results_dir = smoke_repro
    parameters = {"scale": "smoke", "results_dir": str(results_dir), "runs_root": str(runs_root),
                  "figures_dir": str(tmp_path)}
    executed = papermill.execute_notebook(str(path), str(tmp_path / path.name), cwd=str(tmp_path),
                                          parameters=parameters, kernel_name="python3",
                                          progress_bar=False)
    errors = [o for cell in executed.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
