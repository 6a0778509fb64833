"""What the notebooks show: a table's measured rows at a scale (produced on the spot at smoke
scale when missing), summarized over seeds as mean +- std, beside the paper's numbers, which
come from `est_analysis.paper` and are labelled as the paper's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from est_analysis.diagnostics import loss_slopes, slope_ratio, slopes_at_equal_loss, transition_table
from est_analysis.paper import paper_table
from est_analysis.repro.claims import judge_claims
from est_analysis.repro.experiments import equivalence_margin, load_experiment
from est_analysis.repro.runner import curvature_trace, read_results, run_table
from est_analysis.repro.workspace import find_workspace
from est_analysis.training import RunDir


def measured(table: str, scale: str, results_dir: Path | None = None,
             runs_root: Path | None = None) -> pd.DataFrame:
    """The runner's rows of `table` at `scale`. Missing smoke results are produced here (a few
    minutes); missing larger scales are an error naming the command that produces them."""
    results_dir = results_dir or find_workspace(scale=scale).results
    path = results_dir / f"{table}.csv"
    rows = read_results(path) if path.exists() else pd.DataFrame({"scale": []})
    rows = rows[rows["scale"] == scale]
    if rows.empty:
        if scale != "smoke":
            raise FileNotFoundError(f"no {table} results at scale {scale} in {path}: run "
                                    f"`est repro {table} --scale {scale}` first")
        rows = run_table(table, scale, runs_root=runs_root, results_dir=results_dir, progress=False)
    return rows.reset_index(drop=True)


def summarize(rows: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per label (in table order): 'mean +- std (n)' of each metric."""
    order = list(dict.fromkeys(rows["label"]))
    groups = rows.groupby("label")

    def cell(values: pd.Series) -> str:
        values = values.dropna()
        if len(values) > 1:
            return f"{values.mean():.4g} ± {values.std():.2g} (n={len(values)})"
        return f"{values.mean():.4g} (n=1)" if len(values) else ""
    return pd.DataFrame({m: groups[m].apply(cell) for m in metrics}).loc[order]


def side_by_side(table: str, rows: pd.DataFrame, pairs: dict[str, str]) -> pd.DataFrame:
    """Ours next to the paper's: `pairs` maps our column to the paper's metric; the columns
    are labelled 'ours: ...' and 'paper: ...'."""
    ours = summarize(rows, list(pairs)).rename(columns=lambda c: f"ours: {c}")
    paper = paper_table(table).reindex(ours.index)
    columns = {}
    for our, their in pairs.items():
        columns[f"ours: {our}"] = ours[f"ours: {our}"]
        if their in paper:
            columns[f"paper: {their}"] = paper[their]
    return pd.DataFrame(columns)


def run_dirs(rows: pd.DataFrame, label: str) -> list[Path]:
    """The run directories of every seed of `label`."""
    workspace = find_workspace()
    return [workspace.resolve(d) for d in rows.loc[rows["label"] == label, "run_dir"]]


def missing_runs(rows: pd.DataFrame) -> list[Path]:
    """The run directories of `rows` that are not on this machine (no metrics are read)."""
    workspace = find_workspace()
    return [path for path in map(workspace.resolve, rows["run_dir"]) if not RunDir(path).has_run]


def missing_note(missing: list[Path], scale: str) -> str:
    """Markdown for a figure some of whose runs are not on this machine: how many, named as
    the results record them (relative to the checkout), and that the figure is not saved."""
    workspace = find_workspace()
    named = [workspace.recorded(path) for path in missing]
    listed = ", ".join(f"`{name}`" for name in named[:3]) + (", ..." if len(named) > 3 else "")
    return (f"{len(named)} of this figure's runs are not on this machine ({listed}): they are "
            f"left out, and the partial figure is not saved over the committed one "
            f"(`est repro ... --scale {scale}` recreates the runs).")


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    """One bullet per claim: what was measured, the test, p, Holm's p and the verdict."""
    return "\n".join(f"- **{r.claim}** ({r.paper}): {r.measured}; {r.test or 'no test'}, "
                     f"p = {r.p:.3g}, Holm {r.p_holm:.3g} → **{r.verdict}**"
                     for r in verdicts.itertuples())


def loss_histories(rows: pd.DataFrame) -> tuple[dict[str, list[pd.DataFrame]], list[Path]]:
    """Per label (in table order), the metrics.csv of every seed whose run directory is on this
    machine, and the run directories that are not. Run directories are not committed; a clone
    has the results CSVs only, and `est repro TABLE --scale SCALE` recreates the runs."""
    histories, missing = {}, []
    for label in dict.fromkeys(rows["label"]):
        for path in run_dirs(rows, label):
            run = RunDir(path)
            if run.has_run:
                histories.setdefault(label, []).append(run.read_metrics())
            else:
                missing.append(path)
    return histories, missing


def transitions_and_slopes(table2: pd.DataFrame, samples: int = 8, batches: int = 2
                           ) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """C3 and C4 from Table 2's runs: the transition table of every EST seed, the slopes of EST's
    stage 3 and of Original binned by loss level and their ratio, per step and per unit of
    cumulative learning rate (the binned table is per step)."""
    transitions = pd.concat([transition_table(d, samples, window=10, batches=batches).assign(run=d.name)
                             for d in run_dirs(table2, "EST")], ignore_index=True)
    window = max(5, int(table2["steps"].iloc[0]) // 20)
    ratios, binned = {}, None
    for x in ("step", "cum_lr"):
        slopes = {label: pd.concat([loss_slopes(RunDir(d).read_metrics(), window, x=x,
                                                stage=3 if label == "EST" else None)
                                    for d in run_dirs(table2, label)])
                  for label in ("Original", "EST")}
        table = slopes_at_equal_loss(slopes, bins=4)
        binned = table if binned is None else binned
        ratios[x] = slope_ratio(table, "EST", "Original")
    return transitions, binned, ratios["step"], ratios["cum_lr"]


def equal_loss_traces(table5: pd.DataFrame, ladder_rows: pd.DataFrame, settings: dict
                      ) -> pd.DataFrame:
    """C5 at equal loss: for each EST run of Table 5, the fully-decayed Original run of the
    ladder (any length, same model) whose final validation loss is nearest EST's, and its
    Hessian trace with Table 5's settings (rows labelled 'Original at EST's loss')."""
    workspace = find_workspace()
    originals = ladder_rows[(ladder_rows["arm"] != "EST")].drop_duplicates("run_dir")
    rows = []
    for est in table5[table5["label"] == "EST"].itertuples():
        pool = originals[originals["model"] == est.model]
        if pool.empty:
            continue
        match = pool.loc[(pool["final_val_loss"] - est.final_val_loss).abs().idxmin()]
        trace = curvature_trace(RunDir(workspace.resolve(match["run_dir"])), settings)
        rows.append({"label": "Original at EST's loss", "seed": est.seed,
                     "final_val_loss": match["final_val_loss"], "matched_to": est.final_val_loss,
                     "run_dir": match["run_dir"]} | trace)
    return pd.DataFrame(rows)


def claims_at(scale: str, results_dir: Path | None = None, runs_root: Path | None = None
              ) -> pd.DataFrame:
    """Every claim judged from the results at `scale` (tables that are missing: not measured;
    the ladder's summary when `est repro ladder` has run at this scale)."""
    tables = {}
    for table in ("table2", "table3", "table5"):
        try:
            tables[table] = measured(table, scale, results_dir, runs_root)
        except FileNotFoundError:
            tables[table] = None
    transitions, slope, slope_lr = None, None, None
    if tables["table2"] is not None and not missing_runs(tables["table2"]):
        transitions, _, slope, slope_lr = transitions_and_slopes(tables["table2"])  # needs the runs
    results = results_dir or find_workspace(scale=scale).results
    ladder, equal_loss = None, None
    if (results / "ladder_summary.csv").exists():
        ladder = pd.read_csv(results / "ladder_summary.csv").query("scale == @scale")
    if tables["table5"] is not None and (results / "ladder.csv").exists():
        rows = read_results(results / "ladder.csv").query("scale == @scale")
        if not rows.empty and not missing_runs(rows):
            equal_loss = equal_loss_traces(tables["table5"], rows,
                                           load_experiment("table5", scale).settings["hessian"])
    margin = equivalence_margin(scale)
    return judge_claims(tables["table2"], tables["table3"], tables["table5"], transitions, slope,
                        margin, ladder, slope_lr, equal_loss)
