"""Every notebook runs top to bottom on a fresh kernel at smoke scale (papermill injects the
parameters), reading the smoke results that `est repro all --scale smoke` wrote."""

from pathlib import Path

import papermill
import pytest

pytestmark = pytest.mark.notebooks  # the fast subset leaves them out: -m "not slow and not notebooks"

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


TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_executes(path, tmp_path):
    """The tutorials run as a user would run them (their own defaults: smoke-size runs under
    `runs/` of the working directory); their own cells assert what they show, e.g. that the
    hand-written loop gives `est train`'s losses and FLOPs step for step."""
    executed = papermill.execute_notebook(str(path), str(tmp_path / path.name), cwd=str(tmp_path),
                                          kernel_name="python3", progress_bar=False)
    errors = [o for cell in executed.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any((tmp_path / "runs").iterdir())
