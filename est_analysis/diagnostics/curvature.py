"""Curvature over training (section 5.2, Table 5): the trace of the Hessian (or the GGN, or a
Fisher: `operator`) of the snapshots along a run, each with Hutch++ and a 95 % interval, on the
same fixed validation batches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from est_analysis.hessian.curvatures import curvature_operator
from est_analysis.hessian.trace import hutchpp
from est_analysis.loss import evaluate
from est_analysis.training import RunDir, load_run


def curvature_trajectory(run_dir: str | Path, matvecs: int = 30, batches: int = 2, seed: int = 0,
                         by_block: bool = False, steps: list[int] | None = None,
                         progress: bool = False, operator: str = "hessian") -> pd.DataFrame:
    """One row per snapshot (or per snapshot at `steps`): step, operator, trace estimate, its
    CI, trace per parameter, loss."""
    paths = RunDir(run_dir).snapshots()
    if steps is not None:
        available = {RunDir.snapshot_step(p): p for p in paths}
        missing = sorted(set(steps) - set(available))
        if missing:
            raise ValueError(f"{run_dir} has no snapshot at steps {missing}; it has "
                             f"{sorted(available)}")
        paths = [available[s] for s in sorted(set(steps))]
    rows = []
    for path in tqdm(paths, disable=not progress, desc="snapshots", unit="snapshot"):
        run = load_run(path)
        fixed = run.batches("val", batches)
        estimate = hutchpp(curvature_operator(operator, run.model, fixed, seed=seed), matvecs=matvecs,
                           seed=seed, by_block=by_block)
        row = {"step": run.step, "operator": operator, "trace": estimate.estimate,
               "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
               "trace_per_param": estimate.per_param, "loss": evaluate(run.model, fixed),
               "hvps": estimate.matvecs}
        row.update({f"block:{name}": value for name, (value, _) in estimate.blocks.items()})
        rows.append(row)
    return pd.DataFrame(rows)
