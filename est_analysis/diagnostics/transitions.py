"""Stage transitions (section 5.1): when the subnetwork grows, the training loss drops at once,
which the paper attributes to the smaller implicit regularizer of the larger subnet.

For each stage boundary b of a run, from its metrics and its snapshot after b steps (the
trainer keeps one at every boundary):
- observed: the training loss (the loss the optimizer sees, at the two rates) of the last
  `window` steps of the stage and of the first `window` steps of the next one, each fitted by a
  line and evaluated at the boundary, so that the jump excludes the ordinary descent over the
  windows; `observed_drop` is the jump with its standard error;
- same weights, same batches: E_S[L_S] at the old rates and at the new rates on fixed
  validation batches at the boundary snapshot, and Delta R = R(old) - R(new), their difference,
  which is the whole drop if the weights did not move (a first step does move them a little).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from est_analysis.diagnostics.regularizer import regularizer_gap
from est_analysis.subnet import Rates
from est_analysis.training import CheckpointError, RunDir, load_run


def transition_table(run_dir: str | Path, samples: int = 16, window: int = 10, batches: int = 4,
                     seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """One row per stage boundary of the run (see the module docstring)."""
    run_dir = RunDir(run_dir)
    metrics = run_dir.read_metrics()
    starts = metrics.loc[metrics["stage"].diff() > 0, "step"].tolist()
    if not starts:
        raise ValueError(f"{run_dir} has a single stage: there is no transition to analyse")
    rows = []
    for boundary in tqdm(starts, disable=not progress, desc="boundaries", unit="boundary"):
        path = run_dir.snapshot(boundary)
        if not path.exists():
            raise CheckpointError(f"{path} is missing: the run kept no snapshot at its boundary "
                                  f"{boundary} (retrain with this version of est_analysis)")
        run = load_run(path)
        if run.config.method != "est":
            raise ValueError(f"{run_dir.path} was trained with method {run.config.method!r}; the "
                             "transition analysis measures EST's subnet sampling (method est)")
        fixed = run.batches("val", batches)
        before = metrics[metrics.step < boundary].tail(window)
        after = metrics[metrics.step >= boundary].head(window)
        if len(before) < 3 or len(after) < 3:
            raise ValueError(f"boundary {boundary}: a stage has fewer than 3 steps on one side; "
                             "use a longer run")
        (level_before, stderr_before), (level_after, stderr_after) = (
            _level_at(part, boundary - 0.5) for part in (before, after))
        old, new = (Rates(*r[["p_H", "p_M", "p_L"]].iloc[0]) for r in (before.tail(1), after))
        gap_old = regularizer_gap(run.model, fixed, old, samples, seed)
        gap_new = (regularizer_gap(run.model, fixed, new, samples, seed) if not new.is_full
                   else None)
        r_new = gap_new.gap if gap_new else 0.0
        rows.append({
            "boundary": boundary, "rates_before": tuple(old), "rates_after": tuple(new),
            "train_loss_before": level_before, "train_loss_after": level_after,
            "observed_drop": level_before - level_after,
            "observed_drop_stderr": math.hypot(stderr_before, stderr_after),
            "full_loss": gap_old.full_loss,
            "loss_before_same_batches": gap_old.full_loss + gap_old.gap,
            "loss_after_same_batches": gap_old.full_loss + r_new,
            "delta_R": gap_old.gap - r_new,
            "delta_R_stderr": (gap_old.stderr ** 2 + (gap_new.stderr ** 2 if gap_new else 0)) ** 0.5,
            "samples": samples, "window": window})
    return pd.DataFrame(rows)


def _level_at(part: pd.DataFrame, step: float) -> tuple[float, float]:
    """The training loss of a line fitted to `part`, at `step`, and its standard error."""
    fit = stats.linregress(part["step"] - step, part["train_loss"])
    return float(fit.intercept), float(fit.intercept_stderr)
