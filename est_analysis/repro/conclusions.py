"""What the runs conclude about why EST trails (issue #24), computed from the results CSVs
alone (`est repro summary --conclusions`), so that no verdict in the README is typed by hand.

Every cell where EST meets an Original trained for EST's FLOPs (the ladder's lengths, the width
study's models, the LR study's peak LRs and schedules, and each method at its own best LR) is
one test: EST minus that Original, paired by seed, Holm-corrected within its axis (length, width,
LR: one question each), with a paired TOST within the claims' equivalence margin (table2.yaml), so
that "EST reaches the compute-matched Original" needs equality shown, not a p above 0.05; a sign
test over the cells (their runs are disjoint) says whether EST's side is consistent. The ablation
says which component carries EST's gap to Original (Holm over its variants), the positive
control whether EST regularizes where it should.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from est_analysis.plotting.style import save
from est_analysis.plotting.studies import studies_figure
from est_analysis.repro.experiments import equivalence_margin
from est_analysis.repro.runner import results_at
from est_analysis.repro.studies import MATCHED_VARIANT, compare_arms, load_study, study_summary
from est_analysis.repro.workspace import find_workspace
from est_analysis.stats import aligned, holm, paired, paired_tost, welch

MATCHED = "Original at EST's FLOPs"


def _rows(results_dir: Path, name: str, scale: str) -> pd.DataFrame:
    return results_at(results_dir / f"{name}.csv", scale)


def _cells(results_dir: Path, scale: str) -> list[tuple[str, str, bool, str, pd.DataFrame]]:
    """(axis, cell, disjoint, same_as, its rows with arms EST and the matched Original) for
    every cell where EST meets the compute-matched Original: the ladder's lengths and its own
    width rungs, the width and LR studies' groups, and each arm at its best peak LR. A cell
    made of exactly the runs of an earlier cell names that cell in `same_as` (it is that
    cell's result, not another test); `disjoint` is False for one that shares any run with an
    earlier cell (the sign test counts only disjoint cells)."""
    cells = []
    ladder = _rows(results_dir, "ladder", scale)
    ladder = ladder if "rung" in ladder else ladder.iloc[0:0]  # a ladder.csv without runs
    for rung, rows in ladder[ladder["axis"] == "length"].groupby("rung") if not ladder.empty else ():
        cells.append(("length", f"{rows['model'].iloc[0]} @ {rung:g} tok/param", rows))
    for (rung, model), rows in (ladder[ladder["axis"] == "size"].groupby(["rung", "model"])
                                if not ladder.empty else ()):
        cells.append(("width", f"{model} @ {rung:g} tok/param (ladder)", rows))
    for axis in ("width", "lr"):
        rows = _rows(results_dir, axis, scale)
        for group, g in rows.groupby("group", sort=False) if not rows.empty else ():
            cells.append((axis, group, g))
    lr = _rows(results_dir, "lr", scale)
    peaks = lr[lr["group"].str.startswith("gpt2, lr ")] if not lr.empty else lr
    if not peaks.empty:  # each arm at the peak LR where its mean loss is lowest
        best = peaks.groupby(["arm", "lr"])["final_val_loss"].mean().groupby("arm").idxmin()
        pick = [peaks[(peaks["arm"] == arm) & (peaks["lr"] == best[arm][1])]
                for arm in ("EST", MATCHED) if arm in best]
        if len(pick) == 2:
            grid = sorted(peaks["lr"].unique())
            edge = [f"{who} at the grid's {'top' if best[arm][1] == grid[-1] else 'bottom'}"
                    for arm, who in (("EST", "EST"), (MATCHED, "matched Original"))
                    if best[arm][1] in (grid[0], grid[-1])]
            name = (f"gpt2, each at its best peak LR (EST {best['EST'][1]:g}, "
                    f"matched Original {best[MATCHED][1]:g}"
                    + (f"; not bracketed: {', '.join(edge)}" if edge else "") + ")")
            cells.append(("lr", name, pd.concat(pick)))
    seen_sets: dict[frozenset, str] = {}
    seen_runs, found = set(), []
    for axis, cell, rows in cells:
        rows = rows[rows["arm"].isin(["EST", MATCHED])]
        runs = frozenset(rows["run_dir"])
        if rows["arm"].nunique() == 2:
            found.append((axis, cell, not runs & seen_runs, seen_sets.get(runs, ""), rows))
            seen_sets.setdefault(runs, cell)
            seen_runs |= runs
    return found


def matched_cells(scale: str = "regime", results_dir: Path | None = None,
                  margin: float | None = None) -> pd.DataFrame:
    """One row per cell: steps, passes, seeds, EST - matched Original (paired mean, 95 % CI, p),
    paired TOST p within `margin` (default the claims' margin), both Holm-adjusted within the
    cell's axis (its `family`: the cells of the axis that are not another cell's runs again),
    and the verdict: 'EST trails', 'EST better', 'equal within +-m', 'not distinguishable'
    (neither a difference nor equality shown) or '1 seed: not tested'. A cell that is another
    cell's runs again (`same_as`) carries that cell's tests."""
    results_dir = results_dir or find_workspace(scale=scale).results
    margin = margin or equivalence_margin(scale)
    lines = []
    for axis, cell, disjoint, same_as, rows in _cells(results_dir, scale):
        est, matched = (rows[rows["arm"] == arm].set_index("seed") for arm in ("EST", MATCHED))
        a, b = aligned(est["final_val_loss"], matched["final_val_loss"])
        d = paired(a, b)
        lines.append({"axis": axis, "cell": cell, "disjoint": disjoint, "model": est["model"].iloc[0],
                      "steps": int(est["steps"].iloc[0]), "passes": float(est["passes"].iloc[0]),
                      "seeds": d.n_a, "diff": d.estimate, "diff_low": d.low,
                      "diff_high": d.high, "p": d.p, "p_tost": paired_tost(a, b, margin),
                      "same_as": same_as})
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    tested = table[table["same_as"] == ""]
    for column in ("p", "p_tost"):
        table[f"{column}_holm"] = tested.groupby("axis")[column].transform(lambda p: holm(p))
    table["family"] = tested.groupby("axis")["cell"].transform("size")
    table = table.assign(verdict=table.apply(lambda line: verdict(line, margin), axis=1))
    tests = ["axis", "p_holm", "p_tost_holm", "family", "verdict"]
    first = {cell: i for i, cell in tested["cell"].items()}
    for i, same_as in table.loc[table["same_as"] != "", "same_as"].items():
        table.loc[i, tests] = table.loc[first[same_as], tests]
    return table


def committed_cell(cell: str, scale: str = "regime", results_dir: Path | None = None) -> pd.Series | None:
    """The committed result of one cell (a `matched_cells` line, verdict included), or None
    when the results hold no such cell."""
    cells = matched_cells(scale, results_dir)
    found = cells[cells["cell"] == cell] if not cells.empty else cells
    return None if found.empty else found.iloc[0]


def stated(line: pd.Series) -> str:
    """A cell's result as every place that states it says it (quickstart, README, docs,
    `est repro summary`): the paired difference and interval, the raw paired p, the p after
    Holm within its family (the cells of its axis) and the toolkit's verdict on that."""
    if line["seeds"] < 2:
        return f"{line['diff']:+.3f} nats (1 seed: not tested)"
    again = f"the runs of {line['same_as']}, " if line.get("same_as") else ""
    return (f"{line['diff']:+.3f} nats (95 % CI {line['diff_low']:+.3f}..{line['diff_high']:+.3f}, "
            f"{again}{_seeds(line['seeds'])} paired; raw p {line['p']:.2g}, Holm p "
            f"{line['p_holm']:.2g} over the {line['axis']} axis' {int(line['family'])} cells): "
            f"{line['verdict']}")


def verdict(line: pd.Series, margin: float, subject: str = "EST") -> str:
    """The toolkit's rule on a paired comparison (`diff`, `seeds`, Holm-adjusted `p_holm` and
    TOST `p_tost_holm`): trails or better when the difference is significant, equal within the
    margin when the TOST shows it, else not distinguishable (equality is never read off a
    large p)."""
    if line["seeds"] < 2:
        return "1 seed: not tested"
    if line["p_holm"] < 0.05:
        return f"{subject} trails" if line["diff"] > 0 else f"{subject} better"
    if line["p_tost_holm"] < 0.05:
        return f"equal within +-{margin:g}"
    return "not distinguishable"


def _seeds(n: int) -> str:
    return f"{int(n)} seed{'s' if n > 1 else ''}"


def _cell_text(line: pd.Series) -> str:
    return f"{line['cell']} ({line['diff']:+.3f}, {_seeds(line['seeds'])}, {line['steps']:,} steps)"


def _est_gap(ablation: pd.DataFrame) -> pd.DataFrame:
    """The ablation's reference line: EST minus Original of the same seeds (paired)."""
    reference = ablation[ablation["group"] == "reference"]
    est, original = (reference[reference["arm"] == arm] for arm in ("EST", "Original"))
    return pd.DataFrame([{"arm": "EST", "versus": "Original", **compare_arms(est, original)}])


def _components(results_dir: Path, scale: str, margin: float) -> str:
    """Which component carries EST's gap: each variant against Original (its share of EST's
    gap) and against the Original trained for its own FLOPs (Holm over the variants, paired
    TOST within `margin`, the toolkit's verdict); contrasts between variants of equal FLOPs;
    and variants that end above EST although EST samples more."""
    rows = _rows(results_dir, "ablation", scale)
    if rows.empty:
        return ""
    summary = study_summary(rows, margin)
    versus = summary[summary["versus"] == "Original"].set_index("arm")
    matched = summary[summary["versus"] == MATCHED_VARIANT].set_index("arm")
    if not matched.empty:
        matched["p_holm"] = holm(matched["p_paired"])
        matched["p_tost_holm"] = holm(matched["p_tost"])
    gap = _est_gap(rows).iloc[0]
    parts = []
    for arm, line in versus.iterrows():
        text = (f"{arm.removeprefix('EST, ')}: {line['diff']:+.3f} vs Original "
                f"({line['share_of_est_gap']:.0%} of EST's gap, {1 - line['flops_ratio']:.1%} "
                f"fewer FLOPs, {_seeds(line['seeds'])})")
        if arm in matched.index:
            m = matched.loc[arm]
            text += (f", {m['diff']:+.3f} vs the Original of its own FLOPs (Holm p "
                     f"{m['p_holm']:.2g}, TOST Holm p {m['p_tost_holm']:.2g}: "
                     f"**{verdict(m, margin, 'it')}**)")
        parts.append(text)
    text = (f"*Which component* (each variant named by everything it samples). EST's gap to "
            f"Original at the ablation's length is {gap['diff']:+.3f} ({_seeds(gap['seeds'])}). "
            f"{'; '.join(parts)}.")
    contrasts = _equal_flops_contrasts(rows)
    if contrasts:
        text += " At equal FLOPs: " + "; ".join(contrasts) + "."
    above = summary[(summary["versus"] == "EST") & (summary["diff"] > 0)]
    if not above.empty:
        text += (" Above EST, which samples more: " + ", ".join(
            f"{line['arm'].removeprefix('EST, ')} ({line['diff']:+.3f}, paired p "
            f"{line['p_paired']:.2g})" for _, line in above.iterrows())
            + ": the components' mean effects do not add up (an observation, not a test).")
    return text


def _equal_flops_contrasts(rows: pd.DataFrame) -> list[str]:
    """Paired differences between ablation variants that train with identical FLOPs."""
    variants = rows[rows["arm"].str.startswith("EST, ")]
    flops = variants.groupby("arm")["total_flops"].first()
    runs = variants.groupby("arm")["run_dir"].agg(frozenset)
    lines = []
    for a in flops.index:
        for b in flops.index:
            if a < b and flops[a] == flops[b] and runs[a] != runs[b]:
                d = compare_arms(variants[variants["arm"] == a], variants[variants["arm"] == b])
                lines.append(f"{a.removeprefix('EST, ')} minus {b.removeprefix('EST, ')} "
                             f"{d['diff']:+.3f} (95 % CI {d['diff_low']:+.3f}..{d['diff_high']:+.3f}, "
                             f"paired p {d['p_paired']:.2g}, {_seeds(d['seeds'])})")
    return lines


def _screen(results_dir: Path, scale: str, margin: float) -> str:
    """The schedule screen (issue #33 section 3): each candidate minus the Original trained for
    its own FLOPs, best first, with its measured FLOPs saving; one seed is a screen, not a test."""
    rows = _rows(results_dir, "schedules", scale)
    if rows.empty:
        return ""
    summary = study_summary(rows, margin).sort_values("diff")
    parts = [f"{line['group']}: {line['diff']:+.3f} at {line['flops_saving']:.1%} fewer FLOPs "
             f"({_seeds(line['seeds'])})" for _, line in summary.iterrows()]
    tested = summary[summary["seeds"] > 1]
    verdicts = ""
    if not tested.empty:
        tested = tested.assign(p_holm=holm(tested["p_paired"]), p_tost_holm=holm(tested["p_tost"]))
        verdicts = " Verdicts (Holm over the schedules): " + "; ".join(
            f"{line['group']}: **{verdict(line, margin, 'it')}**" for _, line in tested.iterrows()) + "."
    return (f"*A schedule that saves compute* (the screen: candidates of the cost search that "
            f"leave MLP neurons alone, and adaptive switches (`--switch-slope`) of such schedules, "
            f"whose saving is what the rule left; each minus the Original trained for its own "
            f"FLOPs, best first): {'; '.join(parts)}.{verdicts}")


def _finals(results_dir: Path, scale: str, margin: float) -> str:
    """The screen's best candidates at the ablation's length over seeds: each minus the
    Original of its own FLOPs, Holm over the finalists, paired TOST, the toolkit's verdict."""
    rows = _rows(results_dir, "finals", scale)
    if rows.empty:
        return ""
    summary = study_summary(rows, margin)
    tested = summary[summary["seeds"] > 1]
    if not tested.empty:
        summary.loc[tested.index, "p_holm"] = holm(tested["p_paired"])
        summary.loc[tested.index, "p_tost_holm"] = holm(tested["p_tost"])
    parts = [f"{line['group']}: {line['diff']:+.3f} (95 % CI {line['diff_low']:+.3f}.."
             f"{line['diff_high']:+.3f}, {_seeds(line['seeds'])}) at {line['flops_saving']:.1%} "
             f"fewer FLOPs: **{verdict(line, margin, 'it') if line['seeds'] > 1 else '1 seed: not tested'}**"
             for _, line in summary.sort_values("diff").iterrows()]
    return (f"*Finals* (the screen's best at {rows['tokens_per_param'].iloc[0]:.0f} tokens per "
            f"parameter, their boundaries scaled from the screen's steps; each minus the Original "
            f"trained for its own FLOPs, Holm over the finalists, equal by paired TOST within "
            f"±{margin:g}): {'; '.join(parts)}."
            + (" They were chosen among the cost search's candidates only: the adaptive ones "
               "were screened after the finals ran, and have none."
               if load_study("finals", scale)[0].get("among") == "searched" else ""))


def _regularizer(results_dir: Path, scale: str) -> str:
    """R per module kind at the end of stage 2 (scripts/ablation_regularizer.py): each arm's
    mean R by kind, and the contrast of the two equal-FLOPs arms, neurons against heads sampled
    in stages 1-2, each at the kind it samples (Welch over seeds)."""
    rows = _rows(results_dir, "ablation_regularizer", scale)
    rows = rows[(rows.get("status") == "measured") & ~rows["group"].str.contains("classic")] \
        if not rows.empty else rows
    if rows.empty:
        return ""
    means = rows.groupby(["group", "kind"], sort=False)["R"].agg(["mean", "size"])
    parts = [f"{group}: " + ", ".join(f"{kind} {line['mean']:.3f}" for kind, line in g.droplevel(0).iterrows())
             + f" ({_seeds(int(g['size'].iloc[0]))})" for group, g in means.groupby(level=0, sort=False)]
    pick = lambda group, kind: rows.query("group == @group and kind == @kind")["R"]  # noqa: E731
    contrast = welch(pick("neurons (stages 1-2)", "neurons"), pick("heads (stages 1-2)", "heads"))
    return (f"*Regularizer at the end of stage 2* (R = E[L_subnet] - L_full with one kind "
            f"sampled alone at p = 0.5, 32 subnets on 4 validation batches; the classic-scaling "
            f"arm is left out, its full model needs the p factor): {'; '.join(parts)}. Sampling "
            f"neurons leaves a larger R on its own kind than sampling heads does on theirs: "
            f"{contrast.estimate:+.3f} (95 % CI {contrast.low:+.3f}..{contrast.high:+.3f}, Welch "
            f"p {contrast.p:.2g}). That alone does not make R the cause of the gap: neurons (stages "
            f"1-2) carries the larger R and is not distinguishable from its Original, and the runs "
            f"kept do not cover every arm's seeds.")


def _control(results_dir: Path, scale: str, margin: float) -> str:
    rows = _rows(results_dir, "control", scale)
    if rows.empty:
        return ""
    summary = study_summary(rows)
    overfit = summary[summary["versus"] == "its best"].iloc[0]
    parts = []
    for measure, what in (("final_val_loss", "final"), ("best_val_loss", "best")):
        lines = summary[summary.get("measure") == measure]
        parts.append(f"{what} validation loss " + ", ".join(
            f"{line['arm']} {line['diff']:+.3f} (paired p {line['p_paired']:.2g})"
            for _, line in lines.iterrows()))
    head = (f"*Positive control* ({overfit['group']}, {_seeds(overfit['seeds'])}): Original ends "
            f"{overfit['diff']:+.3f} above its own best validation loss")
    if overfit["diff"] < margin:
        return f"{head}: it does not overfit here, so the control is uninformative."
    return f"{head}; against it, {'; '.join(parts)}."


def conclusions_markdown(scale: str = "regime", results_dir: Path | None = None) -> str:
    """The README's verdicts, one bullet each: where EST reaches, trails or beats the
    compute-matched Original (Holm within each axis), which component carries its gap, and
    what the positive control shows."""
    results_dir = results_dir or find_workspace(scale=scale).results
    bullets = []
    cells = matched_cells(scale, results_dir)
    cells = cells[cells["same_as"] == ""] if not cells.empty else cells
    if not cells.empty:
        tested = cells[cells["seeds"] > 1]
        order = ["EST trails", "EST better", *sorted(set(tested["verdict"]) - {"EST trails", "EST better"})]
        groups = {v: tested[tested["verdict"] == v] for v in order if (tested["verdict"] == v).any()}
        text = "; ".join(f"**{v}** at " + ", ".join(_cell_text(line) for _, line in g.iterrows())
                         for v, g in groups.items())
        untested = ", ".join(_cell_text(line) for _, line in cells[cells["seeds"] < 2].iterrows())
        bullets.append(f"*Where EST reaches the compute-matched Original* ({len(tested)} cells "
                       f"with 2 or more seeds, EST minus the Original trained for EST's FLOPs, "
                       f"paired by seed, Holm within each axis; equal means a paired TOST inside "
                       f"the claims' margin): {text}."
                       + (f" With one seed so far: {untested}." if untested else ""))
        own = tested[tested["disjoint"]]  # cells that share no run with another
        if len(own):
            worse = int((own["diff"] > 0).sum())
            sign = binomtest(worse, len(own)).pvalue
            bullets.append(f"*Consistency:* EST's mean is above the matched Original's in {worse} "
                           f"of {len(own)} cells that share no run (two-sided sign test p "
                           f"{sign:.2g}; left out: {len(tested) - len(own)} reusing runs of "
                           "another cell).")
        smallest = tested.loc[tested["diff"].abs().idxmin()] if not tested.empty else None
        if smallest is not None:
            bullets.append(f"*Closest:* {_cell_text(smallest)}, 95 % CI {smallest['diff_low']:+.3f}.."
                           f"{smallest['diff_high']:+.3f}: {smallest['verdict']}.")
    margin = equivalence_margin(scale)
    for text in (_components(results_dir, scale, margin), _regularizer(results_dir, scale),
                 _control(results_dir, scale, margin),
                 _screen(results_dir, scale, margin), _finals(results_dir, scale, margin)):
        if text:
            bullets.append(text)
    return "".join(f"- {b}\n" for b in bullets)


def report_studies(scale: str = "regime", results_dir: Path | None = None,
                   figures_dir: Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """`matched_cells` and the studies' figure, `<figures_dir>/studies_<scale>.png|pdf`
    (default the workspace's figures/); returns the cells and the figure's files."""
    workspace = find_workspace(scale=scale)
    results_dir = results_dir or workspace.results
    cells = matched_cells(scale, results_dir)
    cells = cells[cells["same_as"] == ""] if not cells.empty else cells
    ablation = _rows(results_dir, "ablation", scale)
    summary = study_summary(ablation) if not ablation.empty else None
    reference = _est_gap(ablation) if not ablation.empty else None
    schedules, finals = _rows(results_dir, "schedules", scale), _rows(results_dir, "finals", scale)
    figure = studies_figure(cells, summary, reference, _rows(results_dir, "control_curves", scale),
                            _rows(results_dir, "lr", scale),
                            _rows(results_dir, "instability_curves", scale),
                            study_summary(schedules) if not schedules.empty else None,
                            study_summary(finals) if not finals.empty else None)
    return cells, save(figure, (figures_dir or workspace.figures) / f"studies_{scale}")
