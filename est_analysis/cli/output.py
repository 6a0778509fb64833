"""How the commands hand a result to the user: text, or `--json` on stdout for other tools,
and `--csv` written atomically."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from est_analysis.io import atomic_write_text


def add_output_options(parser: argparse.ArgumentParser, csv: bool = True) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    if csv:
        parser.add_argument("--csv", type=Path, help="also write the table to this CSV")


def emit_table(args: argparse.Namespace, table: pd.DataFrame, summary: dict | None = None,
               record: str | None = None) -> None:
    """Print `table` (and `summary`) as text or JSON; write it to --csv atomically. `record`:
    also keep it as the run's `diagnostics/<record>.csv` when RUN is a run directory (where
    `est plot RUN` finds it)."""
    if getattr(args, "csv", None):
        atomic_write_text(args.csv, table.to_csv(index=False))
    run = Path(getattr(args, "run", "") or "")
    if record and (run / "metrics.csv").is_file():
        atomic_write_text(run / "diagnostics" / f"{record}.csv", table.to_csv(index=False))
    if args.json:
        records = json.loads(table.to_json(orient="records"))
        print(json.dumps({"table": records} | (summary or {})))
        return
    print(table.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    for key, value in (summary or {}).items():
        print(f"{key}: {value}")
