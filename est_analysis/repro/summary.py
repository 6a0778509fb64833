"""The README's measured tables, written from the results CSVs alone (`est repro summary`), so
that no figure in the README is typed by hand. Per table: how far its runs trained (tokens,
tokens per parameter, passes over the training split) and where they ran, then per label the
final validation loss over seeds, its difference from the first row's (Original) with Welch's
95 % interval, and the FLOPs saving. Then the ladder's rungs (`ladder_summary.csv`) and the
studies of why EST trails (`repro.studies`), paired by seed."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from est_analysis.repro.conclusions import MATCHED, conclusions_markdown, matched_cells, stated
from est_analysis.repro.runner import results_at
from est_analysis.repro.studies import planned_runs, study_summary
from est_analysis.repro.workspace import find_workspace
from est_analysis.stats import welch

TITLES = {"table2": "Table 2, GPT-2", "table3": "Table 3, sampling schedulers (GPT-2)",
          "table4": "Table 4, Llama", "inactive": "Parameters outside the subnet (GPT-2)",
          "table5": "Table 5, Hessian trace (GPT-2)"}
PROXIES = {"next_token_acc": "next-token acc", "ood_loss": "OOD loss"}
# a second reference where the table's question is between its rows (which treatment is best)
SECOND_REFERENCE = {"inactive": "EST (dense)"}
EXTRA_COLUMNS = {"table2": PROXIES, "table4": PROXIES,
                 "table5": {"trace": "Tr(H)", "trace_per_param": "Tr(H) / parameter",
                            "ggn_trace": "Tr(G), GGN"}}


def _values(series: pd.Series) -> str:
    return ", ".join(f"{v:.3f}" for v in series)


def _joined(values: pd.Series) -> str:
    return ", ".join(str(v) for v in dict.fromkeys(values.dropna()))


def training_length(rows: pd.DataFrame) -> str:
    """Per model: parameters, steps, tokens, tokens per parameter and passes (when recorded)."""
    parts = []
    for model, group in rows.groupby("model", sort=False):
        row = group.iloc[0]
        text = (f"`{model}` ({int(row['params']):,} parameters), {_joined(group['steps'].map(lambda s: f'{int(s):,}'))}"
                f" steps, {row['tokens'] / 1e6:.3g} M tokens = {row['tokens_per_param']:.3g} tokens"
                " per parameter")
        if not math.isnan(row["passes"]):
            text += f", {row['passes']:.3g} passes over the training split"
        parts.append(text)
    return "; ".join(parts)


def provenance(rows: pd.DataFrame) -> str:
    return (f"trained at commit {_joined(rows['commit'])} on {_joined(rows['machine'])} "
            f"(torch {_joined(rows['torch'])})")


def _difference(loss: pd.Series, reference: pd.Series) -> str:
    d = welch(loss, reference)
    return f"{d.estimate:+.3f}" + ("" if math.isnan(d.p) else
                                   f" ({d.low:+.3f}..{d.high:+.3f}, p {d.p:.2g})")


def _mean(group: pd.DataFrame, column: str) -> str:
    """The column's mean, or 'not computed' where rows predate the column."""
    values = group[column].dropna() if column in group else pd.Series(dtype=float)
    return f"{values.mean():.4g}" if len(values) else "not computed"


def loss_table(table: str, rows: pd.DataFrame) -> str:
    """Markdown: per label, seeds, final loss (mean, per seed), minus the first label's (and
    minus `SECOND_REFERENCE`'s; Welch 95 % CI and two-sided p), FLOPs saving, and the table's
    extra columns (means)."""
    extras = EXTRA_COLUMNS.get(table, {})
    labels = list(dict.fromkeys(rows["label"]))
    references = [labels[0]] + [r for r in [SECOND_REFERENCE.get(table)] if r in labels]
    losses = {label: rows.loc[rows["label"] == label, "final_val_loss"] for label in labels}
    lines = ["| method | seeds | final val loss: mean (per seed) | "
             + "".join(f"minus {r} (95 % CI, Welch p) | " for r in references) + "FLOPs saving |"
             + "".join(f" {name} |" for name in extras.values()),
             "|---|---|---|" + "---|" * len(references) + "---|" + "---|" * len(extras)]
    for label in labels:
        group, loss = rows[rows["label"] == label], losses[label]
        differences = "".join(("" if label == r else _difference(loss, losses[r])) + " | "
                              for r in references)
        lines.append(f"| {label} | {len(group)} | {loss.mean():.4f} ({_values(loss)}) | "
                     f"{differences}{group['flops_saving'].mean():.1%} |"
                     + "".join(f" {_mean(group, c)} |" for c in extras))
    return "\n".join(lines)


def _interval(line: pd.Series, name: str, digits: int = 3) -> str:
    """The difference with its paired (by seed) interval and p where the summary has them,
    Welch's p beside; else Welch's interval and p."""
    if math.isnan(line[name]):
        return ""
    text = f"{line[name]:+.{digits}f}"
    if not pd.isna(line.get(f"{name}_paired_p", math.nan)):
        return text + (f" (paired {line[f'{name}_paired_low']:+.{digits}f}.."
                       f"{line[f'{name}_paired_high']:+.{digits}f}, p {line[f'{name}_paired_p']:.2g}; "
                       f"Welch p {line[f'{name}_p']:.2g})")
    if not math.isnan(line[f"{name}_p"]):
        text += f" ({line[f'{name}_low']:+.{digits}f}..{line[f'{name}_high']:+.{digits}f}, p {line[f'{name}_p']:.2g})"
    return text


def _saving(value: float, bound: object) -> str:
    """An iso-loss saving, or the bound it is (rounded: a bound at 0 reads +0.0%, not -0.0%)."""
    if pd.isna(value):
        return "n/a"
    if isinstance(bound, str) and bound:
        return f"{bound} {round(value, 3) + 0.0:+.1%} (bound)"
    return f"{value:+.1%}"


def _by_cell(cells: pd.DataFrame | None) -> pd.DataFrame:
    """`conclusions.matched_cells` indexed by cell name (a name's first line: the tested one)."""
    if cells is None or cells.empty:
        return pd.DataFrame(index=pd.Index([], name="cell"))
    return cells.drop_duplicates("cell").set_index("cell", drop=False)


def ladder_table(summary: pd.DataFrame, axis: str, cells: pd.DataFrame | None = None) -> str:
    """Markdown: one line per rung (length axis) or model (size axis) of `ladder_summary`; the
    gap to the matched Original as `conclusions.stated` says it where `cells`
    (`conclusions.matched_cells`) has the rung."""
    first = "tokens/param" if axis == "length" else "model | parameters"
    cells = _by_cell(cells)
    lines = [f"| {first} | passes | seeds | Original | EST | EST - Original (95 % CI, p) | "
             "EST - Original at EST's FLOPs (95 % CI, p; verdict) | iso-loss FLOPs saving (95 % CI) | "
             "saving off the Original arm alone / a power-law fit |",
             "|---|---|---|---|---|---|---|---|---|" + ("" if axis == "length" else "---|")]
    for _, line in summary[summary["axis"] == axis].sort_values(["params", "rung"]).iterrows():
        lead = (f"{line['rung']:g}" if axis == "length"
                else f"`{line['model']}` | {int(line['params']):,}") + f" | {line['passes']:.3g}"
        saving = _saving(line["iso_loss_saving"], line["iso_loss_bound"])
        if not isinstance(line["iso_loss_bound"], str):
            saving += f" ({line['iso_loss_saving_low']:+.1%}..{line['iso_loss_saving_high']:+.1%})"
        others = " / ".join(_saving(line.get(f"iso_loss_saving_{c}", math.nan),
                                    line.get(f"iso_loss_bound_{c}")) for c in ("original_arm", "fit"))
        cell = f"{line['model']} @ {line['rung']:g} tok/param" + ("" if axis == "length" else " (ladder)")
        matched = stated(cells.loc[cell]) if cell in cells.index else _interval(line, 'gap_matched')
        lines.append(f"| {lead} | {line['seeds']} | {line['original_loss']:.4f} | "
                     f"{line['est_loss']:.4f} | {_interval(line, 'gap')} | "
                     f"{matched} | {saving} | {others} |")
    return "\n".join(lines)


STUDY_TITLES = {"width": "Why EST trails: width axis (4 layers, head size 8)",
                "ablation": "Why EST trails: one component sampled at a time",
                "control": "Why EST trails: positive control (a small slice, many passes)",
                "lr": "Why EST trails: peak LR and schedule",
                "instability": "Why EST trails: the d = 64 cell's curves (spike, plateau or slower)"}


def study_table(summary: pd.DataFrame) -> str:
    """Markdown of `studies.study_summary`: each arm minus its reference, paired by seed (95 %
    CI and p of the paired t-test) with Welch's p beside it."""
    share = "share_of_est_gap" in summary
    measure = "measure" in summary
    lines = ["| group | arm | minus | " + ("measure | " if measure else "") + "seeds | loss | "
             "reference loss | difference (95 % CI, paired p) | Welch p | FLOPs ratio |"
             + (" share of EST's gap |" if share else ""),
             "|---|---|---|" + ("---|" if measure else "") + "---|---|---|---|---|---|"
             + ("---|" if share else "")]
    for _, line in summary.iterrows():
        diff = f"{line['diff']:+.3f}"
        if not math.isnan(line.get("p_paired", math.nan)):
            diff += f" ({line['diff_low']:+.3f}..{line['diff_high']:+.3f}, p {line['p_paired']:.2g})"
        cells = [line["group"], line["arm"], line["versus"]]
        cells += [line["measure"]] if measure else []
        number = lambda name, f: "" if pd.isna(line.get(name)) else format(line[name], f)  # noqa: E731
        cells += [f"{int(line['seeds'])}", number("loss", ".4f"), number("versus_loss", ".4f"), diff,
                  number("p_welch", ".2g"), number("flops_ratio", ".3f")]
        cells += [number("share_of_est_gap", ".0%")] if share else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _runs(study: str, scale: str, rows: pd.DataFrame) -> str:
    """'N runs', or 'N of M runs so far' while the study is not complete."""
    planned = planned_runs(study, scale)
    return f"{len(rows)} runs" if len(rows) >= planned else f"{len(rows)} of {planned} runs so far"


def summary_markdown(scale: str, results_dir: Path | None = None) -> str:
    """Every table measured at `scale` in `results_dir` (default paper_repro/results), in the
    README's form; a table without rows at the scale is left out."""
    results_dir = results_dir or find_workspace(scale=scale).results
    sections = []
    for table, title in TITLES.items():
        rows = results_at(results_dir / f"{table}.csv", scale)
        if rows.empty:
            continue
        sections.append(f"**{title}** (`results/{table}.csv`): {training_length(rows)}; "
                        f"{provenance(rows)}.\n\n{loss_table(table, rows)}")
    ladder = results_at(results_dir / "ladder_summary.csv", scale)
    cells = matched_cells(scale, results_dir) if not ladder.empty else None
    for axis, title in (("length", "Ladder, length axis"), ("size", "Ladder, size axis")):
        if not ladder.empty and (ladder["axis"] == axis).any():
            runs = results_at(results_dir / "ladder.csv", scale)
            sections.append(f"**{title}** (`results/ladder_summary.csv`; intervals paired by seed "
                            f"with Welch's p beside, bootstrap "
                            f"interval for the saving; {provenance(runs[runs['axis'] == axis])})"
                            f":\n\n{ladder_table(ladder, axis, cells)}")
    for study, title in STUDY_TITLES.items():
        rows = results_at(results_dir / f"{study}.csv", scale)
        if rows.empty:
            continue
        trained = rows[rows["reused_from"].isna()]
        sections.append(f"**{title}** (`results/{study}.csv`, {_runs(study, scale, rows)}, "
                        f"{trained['train_wall_s'].sum() / 3600:.2f} core-hours trained for it; "
                        f"{training_length(rows)}; {provenance(rows)}):\n\n"
                        f"{study_table(study_summary(rows))}")
    return "\n\n".join(sections) + "\n"


def headline_markdown(scale: str = "regime", results_dir: Path | None = None) -> str:
    """The README's findings, one bullet per measurement: EST minus the compute-matched
    Original along the ladder's length axis and in each study (paired by seed where the study
    pairs), with the number of seeds each rests on; a cell of `conclusions.matched_cells` is
    stated as everywhere else (`conclusions.stated`: raw p, Holm and verdict)."""
    results_dir = results_dir or find_workspace(scale=scale).results
    bullets = []
    cells = _by_cell(matched_cells(scale, results_dir))
    ladder = results_at(results_dir / "ladder_summary.csv", scale)
    length = ladder[(ladder["axis"] == "length") & (ladder["model"] == "gpt2-regime")].sort_values("rung")
    if not length.empty:
        rungs = "; ".join(f"{line['rung']:g}: {stated(cells.loc[name]) if name in cells.index else _interval(line, 'gap_matched')}"
                          for _, line in length.iterrows()
                          for name in [f"{line['model']} @ {line['rung']:g} tok/param"])
        bullets.append(f"**Length** (`gpt2-regime`, {int(length['seeds'].min())} seeds per rung): "
                       f"EST - compute-matched Original by tokens/parameter: {rungs}.")
    for study, what in (("width", "Width"), ("lr", "Peak LR and schedule"),
                        ("ablation", "One component at a time"), ("control", "Positive control"),
                        ("instability", "The d = 64 cell again")):
        rows = results_at(results_dir / f"{study}.csv", scale)
        if rows.empty:
            continue
        summary = study_summary(rows)
        versus = {"width": MATCHED, "lr": MATCHED, "ablation": "Original", "control": "Original",
                  "instability": MATCHED}[study]
        lines = summary[summary["versus"] == versus]
        if lines.empty:
            continue
        name = {"ablation": lambda line: line["arm"],
                "control": lambda line: f"{line['arm']}, {line['measure'].replace('_val_loss', '')} "
                                        "validation loss"}.get(study, lambda line: line["group"])
        parts = "; ".join(f"{name(line)}: " + (
            stated(cells.loc[line["group"]]) if line["group"] in cells.index and versus == MATCHED else
            f"{line['diff']:+.3f} ({int(line['seeds'])} seed{'s' * (line['seeds'] > 1)}"
            + (f", paired p {line['p_paired']:.2g})" if not pd.isna(line['p_paired']) else ")"))
            for _, line in lines.iterrows())
        subject = {"ablation": "each variant", "control": "each arm"}.get(study, lines.iloc[0]["arm"])
        bullets.append(f"**{what}** (`results/{study}.csv`, {_runs(study, scale, rows)}): "
                       f"{subject} minus {versus}: {parts}.")
    return "\n".join(f"- {b}" for b in bullets) + "\n"


def readme_block(scale: str, results_dir: Path | None = None, kind: str = "") -> str:
    """`summary_markdown` (kind 'headline': `headline_markdown`; 'conclusions':
    `conclusions.conclusions_markdown`) between the markers `scripts/update_readme.py` replaces."""
    show = {"": summary_markdown, "headline": headline_markdown,
            "conclusions": conclusions_markdown}[kind]
    flag = f" --{kind}" if kind else ""
    return (f"<!-- generated by `est repro summary --scale {scale}{flag}`; do not edit: "
            f"scripts/update_readme.py -->\n{show(scale, results_dir)}"
            "<!-- end of generated summary -->")
