"""The numbers the paper reports (Li et al., ICML 2024), for display beside ours only.

`numbers.csv` holds one reported number per row: `table` (savings, table2-table5, walltime),
`label` (the row of the paper's table), `metric`, `value`, `source` (where in the paper), and
the keys some tables need (`model`, `schedule`, `micro_batch`, `part`). Table 2's Staged
Training and MSG quality numbers are garbled in our copy of the paper and are left out.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

TABLES = ("savings", "table2", "table3", "table4", "table5", "walltime")


def paper_numbers(table: str) -> pd.DataFrame:
    """The paper's rows of `table`, without the key columns that table does not use."""
    if table not in TABLES:
        raise ValueError(f"the paper has no table {table!r} here; choose one of {TABLES}")
    with files(__name__).joinpath("numbers.csv").open() as f:
        numbers = pd.read_csv(f)
    rows = numbers[numbers["table"] == table].dropna(axis="columns", how="all")
    if "micro_batch" in rows:
        rows = rows.astype({"micro_batch": int})
    return rows.reset_index(drop=True)


def paper_table(table: str) -> pd.DataFrame:
    """The paper's `table` wide: one row per label, one column per metric."""
    return paper_numbers(table).pivot(index="label", columns="metric", values="value")
