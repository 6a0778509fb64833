"""`est eval`: downstream scores of a run with lm-evaluation-harness on local task files."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from est_analysis.cli.options import add_run_argument, positive_int
from est_analysis.cli.output import emit_table
from est_analysis.export import export_run
from est_analysis.harness import evaluate, parse_task
from est_analysis.io import atomic_write_text
from est_analysis.training.reopen import is_hf_dir

EXAMPLES = """examples:
  est eval runs/smoke --task lastword=last-word:lambada.jsonl --task quiz=choice:quiz.jsonl
  est eval exported/smoke --include my_tasks/ --tasks my_task1,my_task2 --json
Task files: last-word records {"text": "... last"} (LAMBADA format); choice records
{"query": "...", "choices": [" a", " b"], "gold": 0}. Scores go to eval.csv and eval.json
beside the run (or --out).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="lm-evaluation-harness on local task files (last-word, "
                       "multiple choice, or your own task YAMLs)", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_argument(p)
    p.add_argument("--task", action="append", default=[], metavar="NAME=KIND:FILE",
                   help="a local task: KIND last-word or choice, FILE a JSONL (repeatable)")
    p.add_argument("--include", type=Path, help="a directory of the harness's task YAMLs")
    p.add_argument("--tasks", default="", help="comma-separated task names from --include")
    p.add_argument("--limit", type=positive_int, help="score only the first N examples per task")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--out", type=Path, help="directory for eval.csv/eval.json (default: the run's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    tasks = [parse_task(spec) for spec in args.task]
    named = [t for t in args.tasks.split(",") if t]
    if not tasks and not named:
        raise ValueError("no tasks: pass --task NAME=KIND:FILE, or --include DIR --tasks NAMES")
    if named and args.include is None:
        raise ValueError("--tasks names tasks of an --include directory; pass --include DIR")
    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.out or run_dir
    if is_hf_dir(args.run):
        table = evaluate(args.run, tasks, args.include, named, args.limit, args.batch_size, args.device)
    else:
        with tempfile.TemporaryDirectory(prefix="est-eval-") as tmp:
            model_dir = export_run(args.run, Path(tmp) / "hf")
            table = evaluate(model_dir, tasks, args.include, named, args.limit, args.batch_size,
                             args.device)
    table.insert(0, "run", str(args.run))
    merged = _merged(out / "eval.csv", table)
    atomic_write_text(out / "eval.json", json.dumps(json.loads(merged.to_json(orient="records")), indent=2))
    atomic_write_text(out / "eval.csv", merged.to_csv(index=False))
    emit_table(argparse.Namespace(json=args.json, csv=None), table)


def _merged(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """The results already in `path` with this evaluation's tasks replaced by its rows: each
    `est eval` adds its tasks to the run's eval.csv instead of replacing the others'."""
    if not path.exists():
        return table
    old = pd.read_csv(path)
    return pd.concat([old[~old["task"].isin(set(table["task"]))], table], ignore_index=True)
