"""Train several methods on the same recipe, data and seed, one after another, and compare
validation loss, FLOPs and wall-clock time (the README's main job)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from est_analysis.io import atomic_write_text
from est_analysis.plotting import comparison_figure, save
from est_analysis.training import RunDir, TrainConfig, train


def compare_methods(base: TrainConfig, out_dir: str | Path, methods: tuple[str, ...] = ("original", "est"),
                    resume: bool = False, progress: bool = True) -> pd.DataFrame:
    """One run per method under `out_dir/<method>`; returns the summary table (also written as
    `comparison.csv`) and draws `loss_curves.png` (and .pdf). Ratios are relative to the first method."""
    out = Path(out_dir)
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ValueError(f"--methods {','.join(methods)} names {', '.join(repeated)} more than "
                         "once; each method is trained once")
    configs = [dataclasses.replace(base, method=method) for method in methods]
    for config in configs:  # every run's settings checked before the first one trains
        config.resolved().schedule()
    runs, rows = {}, []
    for method in methods:
        run = RunDir(train(dataclasses.replace(base, method=method), out / method, resume=resume,
                           progress=progress))
        runs[method] = run.read_metrics()
        rows.append(run.read_summary())
    table = pd.DataFrame(rows)[["method", "preset", "scale", "seed", "steps", "final_val_loss",
                                "total_flops", "train_wall_s", "device"]]
    reference = table.iloc[0]
    table["flops_saving"] = 1 - table["total_flops"] / reference["total_flops"]
    table["wall_ratio"] = table["train_wall_s"] / reference["train_wall_s"]
    table["speedup"] = 1 / table["wall_ratio"]
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
    save(comparison_figure(runs, title=f"{', '.join(methods)} at scale {base.scale}, seed {base.seed}"),
         out / "loss_curves")
    return table
