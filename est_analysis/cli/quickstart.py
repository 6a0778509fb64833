"""`est quickstart`: the main job. Does EST save compute at a length where the comparison
means something? Original, EST and the compute-matched Original (trained for EST's FLOPs with
its own schedule) on the regime model at 64 tokens per parameter, in parallel processes, then
the Hessian trace of each final model; one verdict table, a plain reading of it, the CSV and
one figure. A few minutes on 2 CPU cores; a second run reuses the finished runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from est_analysis.domains import NONNEGATIVE_INT, POSITIVE, POSITIVE_INT


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the main job: EST vs a compute-matched Original, "
                       "and their curvature, in a few minutes", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="(default: %(default)s)")
    p.add_argument("--seed", type=NONNEGATIVE_INT.argtype(), default=0,
                   help="(default 0, the seed of the committed ladder's seed-0 runs of this setting)")
    p.add_argument("--tokens-per-param", type=POSITIVE.argtype(), default=64,
                   help="training length (default 64, a rung of the committed ladder)")
    p.add_argument("--workers", type=POSITIVE_INT.argtype(), default=2,
                   help="parallel training processes, one thread each (default 2)")
    p.add_argument("--json", action="store_true", help="print the table and verdict as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from est_analysis.plotting import save
    from est_analysis.plotting.quickstart import quickstart_figure
    from est_analysis.quickstart import committed_result, run_quickstart, verdict
    from est_analysis.training import RunDir

    table = run_quickstart(args.out, args.seed, args.tokens_per_param, args.workers,
                           progress=not args.no_progress)
    committed = committed_result(args.tokens_per_param)
    reading = verdict(table, committed)
    runs = {row.arm: RunDir(row.run_dir).read_metrics() for row in table.itertuples()}
    figure = save(quickstart_figure(runs, table), args.out / "quickstart", formats=("png",))[0]
    if args.json:
        print(json.dumps({"table": table.to_dict(orient="records"), "verdict": reading,
                          "committed": None if committed is None else json.loads(committed.to_json())}))
        return
    shown = table[["arm", "steps", "final_val_loss", "total_flops", "flops_saving", "train_cpu_s",
                   "cpu_saving", "gap_to_matched", "trace", "trace_ci_low", "trace_ci_high"]]
    print(shown.to_string(index=False, formatters={
        "total_flops": "{:.3e}".format, "flops_saving": "{:.1%}".format,
        "cpu_saving": "{:.1%}".format, "train_cpu_s": "{:.0f}".format,
        "gap_to_matched": "{:+.3f}".format, "final_val_loss": "{:.3f}".format,
        "trace": "{:.4g}".format, "trace_ci_low": "{:.4g}".format, "trace_ci_high": "{:.4g}".format}))
    print("train_cpu_s: CPU seconds of each arm's own training steps (the arms ran side by side, "
          "so their wall times, train_wall_s in the CSV, are not comparable)")
    reused = table[table["reused"]]
    if not reused.empty:
        print(f"Reused the finished runs of {', '.join(reused['arm'])} in {args.out} (not "
              "trained again; delete a run's directory to train it anew).")
    print()
    print(reading)
    print(f"\nWrote {args.out / 'quickstart.csv'} and {figure}")
