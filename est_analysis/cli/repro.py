"""`est repro`: regenerate the paper's tables at a scale (resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from est_analysis.cli.options import positive_int
from est_analysis.repro.experiments import TABLES
from est_analysis.repro.conclusions import conclusions_markdown, report_studies
from est_analysis.repro.ladder import report_ladder, run_ladder
from est_analysis.repro.report import claims_at
from est_analysis.repro.runner import git_commit, run_table
from est_analysis.repro.studies import STUDIES, run_study, study_summary
from est_analysis.repro.summary import headline_markdown, summary_markdown
from est_analysis.repro.workspace import find_workspace
from est_analysis.training.recipes import SCALES

EXAMPLES = """examples:
  est repro all --scale smoke                     # every table, minutes; what CI runs
  est repro table2 --scale cpu                    # Original/EST x3 seeds, Staged, MSG, RAPTR
  est repro table3 --scale cpu --seeds 5          # more seeds for the Original-vs-EST rows
  est repro walltime --scale cpu                  # Tables 8-9 (est_analysis.repro.walltime)
  est repro claims --scale cpu --markdown         # C1-C8 judged from the results (README table)
  est repro summary --scale regime                # the README's tables, from the results CSVs
  est repro summary --scale regime --conclusions  # why EST trails: the computed verdicts
  est repro ladder --scale regime                 # EST vs Original by tokens/parameter and size
  est repro ladder --scale regime --axis length   # only the length ladder
  est repro width --scale regime                  # why EST trails: width axis (also: ablation,
                                                  # control, lr; est_analysis.repro.studies)
Interrupted? Run the same command again: finished runs are reused, the others resume.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("repro", help="regenerate the paper's tables (paper_repro/) at a scale",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Train every run of a table (configs in "
                                   "est_analysis/repro/configs), evaluate validation loss and the "
                                   "downstream proxies, and write paper_repro/results/<table>.csv, "
                                   "one row per run with its provenance (commit, config hash, "
                                   "seed, wall time, machine, torch). Runs live in "
                                   "paper_repro/runs/<scale>/. paper_repro/ is the one in the "
                                   "current directory or the nearest above it (a source "
                                   "checkout), else it is created in the current directory.")
    p.add_argument("table", choices=(*TABLES, "all", "claims", "summary", "ladder", *STUDIES),
                   help="which table, all of them; claims: the verdicts on C1-C8 from the "
                        "results already produced; summary: every table at the scale as "
                        "Markdown, from the results CSVs alone (the README's tables); ladder: Original, EST and a compute-matched "
                        "Original by tokens per parameter and model size "
                        "(results/ladder.csv, ladder_summary.csv, figures/ladder_<scale>.png); "
                        "width, ablation, control, lr: why EST trails at small scale "
                        "(results/<study>.csv, est_analysis.repro.studies)")
    p.add_argument("--scale", choices=SCALES, default="smoke",
                   help="(default %(default)s)")
    p.add_argument("--seeds", type=positive_int, help="seeds of the Original-vs-EST rows (default: the "
                                             "config's, 3 at cpu scale)")
    p.add_argument("--axis", choices=("length", "size"), action="append",
                   help="ladder: train only this axis (repeatable; default both)")
    p.add_argument("--runs-root", type=Path, help="where runs live (default paper_repro/runs)")
    p.add_argument("--results-dir", type=Path, help="where CSVs go (default paper_repro/results)")
    p.add_argument("--reverse", action="store_true",
                   help="studies: walk the cells last to first, so that a second job on the same "
                        "study meets the first in the middle (each run is trained once)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--markdown", action="store_true", help="claims: print a Markdown table")
    p.add_argument("--headline", action="store_true",
                   help="summary: only the README's findings, one bullet per measurement")
    p.add_argument("--conclusions", action="store_true",
                   help="summary: only the verdicts on why EST trails (Holm within each axis, "
                        "paired TOST for equality; est_analysis.repro.conclusions)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.table == "claims":
        verdicts = claims_at(args.scale, args.results_dir, args.runs_root)
        if args.json:
            print(verdicts.to_json(orient="records"))
        elif args.markdown:
            print(f"Generated by `est repro claims --scale {args.scale} --markdown` at commit "
                  f"{git_commit()} from the results CSVs (C3, C4 and C5 at equal loss also "
                  "from the run directories, where present).\n")
            print("| claim | paper | measured | test | statistic (df) | p | p (Holm) | verdict |\n"
                  "|---|---|---|---|---|---|---|---|")
            for row in verdicts.itertuples():
                statistic = "" if pd.isna(row.statistic) else (
                    f"{row.statistic:.2f}" + ("" if pd.isna(row.df) else f" ({row.df:.1f})"))
                p, holm = ("" if pd.isna(v) else f"{v:.3g}" for v in (row.p, row.p_holm))
                print(f"| {row.claim} | {row.paper} | {row.measured} | {row.test} | {statistic} "
                      f"| {p} | {holm} | **{row.verdict}** |")
        else:
            print(verdicts.to_string(index=False))
        return
    if args.table == "summary":
        show = (conclusions_markdown if args.conclusions else
                headline_markdown if args.headline else summary_markdown)
        print(show(args.scale, args.results_dir), end="")
        return
    if args.table == "ladder":
        run_ladder(args.scale, tuple(args.axis or ("length", "size")), not args.no_progress)
        summary, figure = report_ladder(args.scale)
        if args.json:
            print(summary.to_json(orient="records"))
        else:
            print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            print(f"figure: {figure[0]}")
        return
    if args.table in STUDIES:
        rows = run_study(args.table, args.scale, not args.no_progress, reverse=args.reverse)
        _, figure = report_studies(args.scale)
        if args.json:
            print(rows.to_json(orient="records"))
        else:
            columns = ["group", "arm", "seed", "steps", "tokens_per_param", "final_val_loss",
                       "total_flops"]
            print(rows[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            print("\n" + study_summary(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            print(f"figure: {figure[0]}")
        return
    tables = TABLES if args.table == "all" else (args.table,)
    results = {}
    for table in tables:
        frame = run_table(table, args.scale, args.seeds, args.runs_root, args.results_dir,
                          progress=not args.no_progress)
        results[table] = frame[frame["scale"] == args.scale]
    if args.json:
        print(json.dumps({t: json.loads(f.to_json(orient="records")) for t, f in results.items()}))
        return
    for table, frame in results.items():
        print(f"== {table} ({args.scale}) -> {(args.results_dir or find_workspace(scale=args.scale).results) / (table + '.csv')}")
        columns = [c for c in ("label", "seed", "final_val_loss", "ood_loss", "next_token_acc",
                               "flops_saving", "speedup", "trace", "part", "variant", "speedup")
                   if c in frame]
        print(frame[list(dict.fromkeys(columns))].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
