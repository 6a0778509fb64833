"""Issue #33 section 2: the regularizer R per module kind at the end of stage 2 for the ablation's
arms, from the snapshots their runs saved at the stage boundary.

For each ablation row whose run directory is found under one of `--roots` (the pinned worktrees
that trained them), R = E[L_subnet] - L_full is measured by Monte Carlo at heads, neurons and
layers each sampled alone at p = 0.5, on the run's own validation batches. Rows whose run
directory is gone are listed as missing, not skipped silently. Output:
paper_repro/results/ablation_regularizer.csv, one row per (run, module kind), with the snapshot
step, the commit that measured it and the machine.

    python scripts/ablation_regularizer.py --roots /work/repro-wt /work/repro-wt3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from est_analysis.diagnostics import regularizer_table
from est_analysis.io import atomic_write_text
from est_analysis.repro.runner import git_commit, machine
from est_analysis.training import load_run

KINDS = {"heads": (0.5, 1.0, 1.0), "neurons": (1.0, 0.5, 1.0), "layers": (1.0, 1.0, 0.5)}


def snapshot_at_stage2_end(run_dir: Path, last_step: int) -> Path | None:
    """The snapshot after stage 2's last (0-based) step, `last_step`."""
    path = run_dir / "snapshots" / f"step_{last_step + 1:07d}.pt"
    return path if path.exists() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", type=Path, nargs="+", required=True,
                    help="checkouts whose paper_repro/runs hold the ablation's run directories")
    ap.add_argument("--results", type=Path, default=Path("paper_repro/results"))
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4)
    args = ap.parse_args()
    ablation = pd.read_csv(args.results / "ablation.csv").query("method == 'est'")
    commit, host = git_commit(), machine("cpu")
    rows = []
    for row in ablation.itertuples():
        found = [snapshot_at_stage2_end(root / row.run_dir, int(row.stage2_end_step))
                 for root in args.roots] if row.stage2_end_step == row.stage2_end_step else []
        snapshot = next((s for s in found if s is not None), None)
        if snapshot is None:
            rows.append({"scale": row.scale, "group": row.group, "seed": row.seed,
                         "run_dir": row.run_dir, "status": "missing: run directory not kept"})
            continue
        run = load_run(snapshot)
        table = regularizer_table(run.model, run.batches("val", args.batches), list(KINDS.values()),
                                  args.samples, second_order=False, seed=0)
        for kind, r in zip(KINDS, table.itertuples()):
            rows.append({"scale": row.scale, "group": row.group, "seed": row.seed,
                         "run_dir": row.run_dir, "status": "measured", "step": run.step, "kind": kind,
                         "full_loss": r.full_loss, "R": r.R_mc, "R_stderr": r.R_mc_stderr,
                         "samples": r.samples, "measured_at_commit": commit,
                         "machine": host})
        print(f"{row.group} seed {row.seed}: " + ", ".join(
            f"{k} {r.R_mc:.4f}" for k, r in zip(KINDS, table.itertuples())), flush=True)
    atomic_write_text(args.results / "ablation_regularizer.csv", pd.DataFrame(rows).to_csv(index=False))


if __name__ == "__main__":
    main()
