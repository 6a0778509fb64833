"""The paper's claims C1-C8, each judged from measured tables by a test that can fail.

- A claimed difference ("EST's Hessian trace is smaller") is Welch's t-test, one-sided in the
  claimed direction (`stats.welch`, scipy's degrees of freedom).
- "Equal loss" (C1) is an equivalence test (`stats.tost`) within a margin fixed in the
  experiment config before the runs (`claims: equivalence_margin` in table2.yaml); no
  significant difference is never read as equality.
- C2 tests the wall-clock speedup (ratio of mean times, Welch on log times) against 1 and
  compares it with the paper's 1.22x; C3 tests every stage transition's drop (one-sided, Holm
  within the claim) and needs most of them, and reports the share of each drop that the measured
  regularizer change Delta R explains; C4 tests the stage-3 slope ratio against 1.
- The claims' p-values are Holm-corrected as one family (`stats.holm`) at `ALPHA`, in the
  claimed direction ('holds') and, separately, in the opposite one ('does not hold').
- C1's compute-fair forms come from the regime ladder: EST minus Original trained for EST's
  FLOPs (paired by seed, Welch beside it) and the iso-loss saving (bootstrap; a bound outside
  Original's measured range is reported, not tested).

Verdicts: 'holds' (significant after correction), 'does not hold' (significant the other way),
'not shown' (neither), 'uninformative' (a degenerate metric: no spread, or every value at the
metric's floor or ceiling, or one seed), 'not measured' (inputs missing).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from est_analysis.paper import paper_table
from est_analysis.stats import Difference, holm, tost_test, welch

ALPHA = 0.05
PAPER_SPEEDUP = float(paper_table("table2").loc["EST", "speedup"])  # Table 2, GPT-2: 1.22x
PAPER = {"C1": "equal validation loss at 26.7 % fewer FLOPs (GPT-2 schedule)",
         "C1 compute-matched": "(our compute-fair form of C1, its primary number) EST's loss is "
                               "below that of Original trained for EST's FLOPs",
         "C1 iso-loss": "(our compute-fair form of C1) EST reaches its loss with fewer FLOPs "
                        "than Original needs for it",
         "C2": "wall-clock speedup 1.22x",
         "C3": "loss drops at stage transitions",
         "C4": "steeper stage-3 slope at equal loss",
         "C4 per LR": "(C4 per unit of cumulative learning rate, which at equal loss is lower in "
                      "EST's stage 3)",
         "C5": "smaller Hessian trace (2510 vs 11763)",
         "C5 at equal loss": "(C5 against the Original run whose final loss is nearest EST's)",
         "C6": "better generalization (downstream scores)",
         "C7": "Table 3: EST-ONE-STAGE has the worst loss",
         "C7 trade-off": "Table 3: no scheduler saving as many FLOPs as EST reaches a lower loss",
         "C8": "stage 2 sampling MHA/MLP beats sampling layers (EST vs EST-THREE-STAGE)"}
# metrics bounded to [0, 1]: every value at a bound makes the metric uninformative
BOUNDED = ("next_token_acc", "last_word_acc")


def _fmt(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna()
    if len(values) < 2:
        return f"{values.mean():.{digits}f} (n={len(values)})"
    return f"{values.mean():.{digits}f} +- {values.std():.{digits}f} (n={len(values)})"


def degenerate(a: pd.Series, b: pd.Series, metric: str = "") -> str:
    """Why a comparison of `a` and `b` cannot inform a verdict, or '' when it can."""
    a, b = a.dropna(), b.dropna()
    if len(a) < 2 or len(b) < 2:
        return "one seed on a side: no spread is known"
    values = pd.concat([a, b])
    if metric in BOUNDED and (values.eq(0).all() or values.eq(1).all()):
        return f"every value of {metric} is {values.iloc[0]:g} (at its bound)"
    if a.std() == 0 and b.std() == 0:
        return "no spread on either side"
    return ""


def one_sided(d: Difference, claimed_lower: bool) -> tuple[float, float]:
    """(p of the claimed direction, p of the opposite one) from a two-sided Welch result."""
    if math.isnan(d.t):
        return math.nan, math.nan
    lower = float(sps.t.cdf(d.t, d.df))
    return (lower, 1 - lower) if claimed_lower else (1 - lower, lower)


def _row(claim: str, measured: str, test: str = "", statistic: float = math.nan,
         df: float = math.nan, p: float = math.nan, p_opposite: float = math.nan,
         verdict: str = "") -> dict:
    return {"claim": claim, "paper": PAPER[claim], "measured": measured, "test": test,
            "statistic": statistic, "df": df, "p": p, "p_opposite": p_opposite, "verdict": verdict}


def difference_claim(claim: str, a: pd.Series, b: pd.Series, name_a: str, name_b: str,
                     metric: str, claimed_lower: bool = True, digits: int = 3) -> dict:
    """Claim: mean(a) < mean(b) (or > when not `claimed_lower`), by one-sided Welch."""
    measured = f"{metric}: {name_a} {_fmt(a, digits)} vs {name_b} {_fmt(b, digits)}"
    if a.dropna().empty or b.dropna().empty:
        return _row(claim, measured, verdict="not measured")
    why = degenerate(a, b, metric)
    if why:
        return _row(claim, f"{measured}; {why}", verdict="uninformative")
    d = welch(a.dropna(), b.dropna())
    p, p_opposite = one_sided(d, claimed_lower)
    measured += f"; difference {d.estimate:+.{digits}g} (95 % CI {d.low:+.{digits}g}..{d.high:+.{digits}g})"
    side = "<" if claimed_lower else ">"
    return _row(claim, measured, f"Welch one-sided ({name_a} {side} {name_b})", d.t, d.df, p,
                p_opposite)


def equivalence_claim(claim: str, a: pd.Series, b: pd.Series, margin: float) -> dict:
    """Claim: |mean(a) - mean(b)| < margin, by TOST; Welch's one-sided p that a is worse is kept
    so that a significant loss of quality reads 'does not hold'."""
    row = difference_claim(claim, a, b, "EST", "Original", "final_val_loss", claimed_lower=False)
    if row["verdict"]:
        return row
    p, t, df = tost_test(a.dropna(), b.dropna(), margin)
    return row | {"test": f"TOST equivalence within +-{margin:g} (margin fixed in the config; "
                          "statistic: the binding one-sided t)",
                  "statistic": t, "df": df, "p": p, "p_opposite": row["p"]}


def speedup_claim(original: pd.DataFrame, est: pd.DataFrame) -> dict:
    """C2: speedup = mean Original time / mean EST time; Welch on log times against 1, and the
    interval set beside the paper's 1.22x."""
    o, e = original["train_wall_s"].dropna(), est["train_wall_s"].dropna()
    machine = est["machine"].iloc[0] if "machine" in est and len(est) else "?"
    if o.empty or e.empty:
        return _row("C2", "Table 2 results missing", verdict="not measured")
    speedup = o.mean() / e.mean()
    why = degenerate(o, e)
    if why:
        return _row("C2", f"{speedup:.2f}x ({machine}); {why}", verdict="uninformative")
    d = welch(np.log(o), np.log(e))
    p, p_opposite = one_sided(d, claimed_lower=False)
    low, high = math.exp(d.low), math.exp(d.high)
    versus = ("above" if low > PAPER_SPEEDUP else "below" if high < PAPER_SPEEDUP
              else "consistent with")
    measured = (f"{speedup:.2f}x training wall-clock (95 % CI {low:.2f}..{high:.2f}x), "
                f"{versus} the paper's {PAPER_SPEEDUP}x ({machine})")
    row = _row("C2", measured, "Welch one-sided on log times (speedup > 1)", d.t, d.df, p, p_opposite)
    return row | {"note": "" if versus != "below" else "faster, but less than the paper's 1.22x"}


def transition_claim(transitions: pd.DataFrame | None) -> dict:
    """C3: each transition's drop is tested one-sided (z = drop / stderr) and Holm-corrected
    within the claim; the claim's p is the one at which a majority of transitions is
    significant. Delta R / drop is the share the regularizer change explains."""
    if transitions is None or transitions.empty:
        return _row("C3", "no transition analysis", verdict="not measured")
    drop, se = transitions["observed_drop"], transitions["observed_drop_stderr"]
    p = [float(sps.norm.sf(d / s)) if s > 0 else math.nan for d, s in zip(drop, se)]
    adjusted = holm(p)
    majority = len(p) // 2 + 1
    significant = sum(q < ALPHA for q in adjusted)
    share = transitions["delta_R"] / drop
    measured = (f"{significant} of {len(p)} transition drops significant (Holm within C3): "
                + ", ".join(f"{d:+.3f}" for d in drop)
                + f"; Delta R explains {share.mean():.0%} of a drop on average "
                  f"(range {share.min():.0%}..{share.max():.0%})")
    claim_p = sorted(q for q in adjusted if not math.isnan(q))[majority - 1] \
        if sum(not math.isnan(q) for q in adjusted) >= majority else math.nan
    return _row("C3", measured, "z one-sided per transition, Holm within, majority needed",
                p=claim_p, p_opposite=math.nan)


def slope_claim(slope: dict | None, claim: str = "C4", axis: str = "steps") -> dict:
    """C4: the slope ratio EST / Original over loss bins, its t-interval tested against 1."""
    if not slope:
        return _row(claim, "no slope comparison", verdict="not measured")
    measured = (f"stage-3 slope ratio EST / Original per {axis}: {slope['ratio']:.2f} (95 % CI "
                f"{slope['ci_low']:.2f}..{slope['ci_high']:.2f}, {slope['bins']} loss bins)")
    bins = slope["bins"]
    if bins < 2 or not math.isfinite(slope["ci_high"]):
        return _row(claim, measured + "; one bin: no spread", verdict="uninformative")
    se = (slope["ci_high"] - slope["ratio"]) / sps.t.ppf(0.975, bins - 1)
    t = (slope["ratio"] - 1) / se if se > 0 else math.inf
    p = float(sps.t.sf(t, bins - 1))
    return _row(claim, measured, "t one-sided over loss bins (ratio > 1)", t, bins - 1, p, 1 - p)


def _label(table: pd.DataFrame | None, label: str) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame(columns=["final_val_loss", "flops_saving"])
    return table[table["label"] == label]


def scheduler_claims(table3: pd.DataFrame | None) -> list[dict]:
    """C7 (EST-ONE-STAGE worse than every other scheduler: intersection-union, the largest
    one-sided p), C7 trade-off (EST no worse than any scheduler saving as much: its loss lower,
    largest p) and C8 (EST lower than EST-THREE-STAGE)."""
    variants = ["EST-ONE-STAGE", "EST-TWO-STAGE-A", "EST-TWO-STAGE-B", "EST-TWO-STAGE-C",
                "EST-THREE-STAGE", "EST"]
    if table3 is None or not set(variants) <= set(table3["label"]):
        return [_row(c, "Table 3 results missing", verdict="not measured")
                for c in ("C7", "C7 trade-off", "C8")]
    loss = {v: _label(table3, v)["final_val_loss"] for v in variants}
    saving = {v: _label(table3, v)["flops_saving"].mean() for v in variants}
    ordering = ", ".join(f"{v} {loss[v].mean():.3f}" for v in sorted(loss, key=lambda v: loss[v].mean()))
    rows = []
    for claim, pairs in (("C7", [(v, "EST-ONE-STAGE") for v in variants if v != "EST-ONE-STAGE"]),
                         ("C7 trade-off", [("EST", v) for v in variants
                                           if v != "EST" and saving[v] >= saving["EST"] - 1e-9])):
        tests = [difference_claim(claim, loss[a], loss[b], a, b, "final_val_loss") for a, b in pairs]
        blocked = [t for t in tests if t["verdict"]]
        if blocked or not tests:
            why = (f"{len(blocked)} of {len(tests)} comparisons untestable "
                   f"({blocked[0]['measured'].rsplit('; ', 1)[-1]})" if blocked else "no rival")
            rows.append(_row(claim, f"val loss, best first: {ordering}; {why}",
                             verdict=blocked[0]["verdict"] if blocked else "uninformative"))
            continue
        rows.append(_row(claim, f"val loss, best first: {ordering}",
                         f"Welch one-sided x{len(tests)}, intersection-union (largest p)",
                         p=max(t["p"] for t in tests), p_opposite=min(t["p_opposite"] for t in tests)))
    rows.append(difference_claim("C8", loss["EST"], loss["EST-THREE-STAGE"], "EST",
                                 "EST-THREE-STAGE", "final_val_loss"))
    return rows


def iso_loss_claim(ladder: pd.DataFrame | None) -> dict:
    """C1 made compute-fair: the ladder's iso-loss saving at its longest rung (bootstrap p that
    the saving is not above 0)."""
    claim = "C1 iso-loss"
    if ladder is None or ladder.empty or "iso_loss_saving" not in ladder:
        return _row(claim, "no regime ladder", verdict="not measured")
    top = ladder[ladder["axis"] == "length"].sort_values("tokens_per_param").iloc[-1]
    bound = f" ({top['iso_loss_bound']} a bound)" if isinstance(top.get("iso_loss_bound"), str) \
        and top["iso_loss_bound"] else ""
    measured = (f"at {top['tokens_per_param']:.3g} tokens/parameter ({top['model']}): EST saves "
                f"{top['iso_loss_saving']:.1%} of Original's FLOPs at equal loss{bound} "
                f"(bootstrap 95 % {top['iso_loss_saving_low']:.1%}..{top['iso_loss_saving_high']:.1%}); "
                "read off other curves of Original's loss against FLOPs: "
                + "; ".join(f"{name} {top[column]:.1%}" for column, name in
                            (("iso_loss_saving_original_arm", "the Original arm alone"),
                             ("iso_loss_saving_fit", "a power-law fit to all Original runs"))
                            if not pd.isna(top.get(column, math.nan)))
                + " (where the curve is flat, hundredths of a nat move the saving by tens of points)")
    if bound:  # outside Original's measured range: a bound, not an estimate to test
        return _row(claim, measured + "; a bound is not tested", verdict="not shown")
    p = top.get("iso_loss_saving_p", math.nan)
    return _row(claim, measured, "bootstrap one-sided (saving > 0)", p=p, p_opposite=1 - p)


def matched_claim(ladder: pd.DataFrame | None) -> dict:
    """C1's primary, compute-fair number: EST minus Original trained for EST's FLOPs at the
    ladder's longest rung, paired by seed (Welch beside it); claimed: EST is not worse."""
    claim = "C1 compute-matched"
    if ladder is None or ladder.empty or "gap_matched" not in ladder:
        return _row(claim, "no regime ladder", verdict="not measured")
    top = ladder[ladder["axis"] == "length"].sort_values("tokens_per_param").iloc[-1]
    paired_p = top.get("gap_matched_paired_p", math.nan)
    kind = "paired" if not pd.isna(paired_p) else "Welch"
    prefix = "gap_matched_paired" if kind == "paired" else "gap_matched"
    estimate, p2 = top["gap_matched"], top[f"{prefix}_p"]
    measured = (f"at {top['tokens_per_param']:.3g} tokens/parameter ({top['model']}, "
                f"{int(top['seeds'])} seeds): EST - Original at EST's FLOPs {estimate:+.4f} "
                f"({kind} 95 % CI {top[f'{prefix}_low']:+.4f}..{top[f'{prefix}_high']:+.4f}; "
                f"Welch p {top['gap_matched_p']:.2g})")
    if pd.isna(p2):
        return _row(claim, measured, verdict="uninformative")
    # one-sided p of the claim (EST's loss below the matched Original's) from the two-sided one
    p = p2 / 2 if estimate < 0 else 1 - p2 / 2
    return _row(claim, measured, f"{kind} t one-sided (EST < Original at EST's FLOPs)", p=p,
                p_opposite=1 - p)


def _verdicts(rows: list[dict]) -> pd.DataFrame:
    """Holm over the claims that were tested; then each verdict."""
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].where(table["verdict"] == ""))
    table["p_opposite_holm"] = holm(table["p_opposite"].where(table["verdict"] == ""))
    tested = table["verdict"] == ""

    def verdict(row: pd.Series) -> str:
        note = row.get("note")
        if row["p_holm"] < ALPHA:
            return f"partly holds ({note})" if isinstance(note, str) and note else "holds"
        if row["p_opposite_holm"] < ALPHA:
            return "does not hold"
        return "not shown"

    table.loc[tested, "verdict"] = table[tested].apply(verdict, axis=1)
    columns = ["claim", "paper", "measured", "test", "statistic", "df", "p", "p_holm", "verdict"]
    return table[columns]


def judge_claims(table2: pd.DataFrame | None = None, table3: pd.DataFrame | None = None,
                 table5: pd.DataFrame | None = None, transitions: pd.DataFrame | None = None,
                 slope: dict | None = None, equivalence_margin: float | None = None,
                 ladder: pd.DataFrame | None = None, slope_lr: dict | None = None,
                 equal_loss: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: the paper's statement, what we measured, the test, its statistic,
    p-value, Holm-adjusted p and verdict. `transitions` is `transition_table` output for EST
    runs, `slope` and `slope_lr` `slope_ratio` results per step and per unit of cumulative LR,
    `ladder` a `ladder_summary`, `equal_loss` `report.equal_loss_traces` output."""
    original, est = _label(table2, "Original"), _label(table2, "EST")
    rows = []
    if len(original) and len(est):
        loss_e, loss_o = est["final_val_loss"], original["final_val_loss"]
        if equivalence_margin is None:
            rows.append(_row("C1", "no equivalence margin in the config", verdict="not measured"))
        else:
            row = equivalence_claim("C1", loss_e, loss_o, equivalence_margin)
            saving = est["flops_saving"].mean()
            rows.append(row | {"measured": row["measured"] + f"; EST at {saving:.1%} fewer FLOPs"})
        rows.append(speedup_claim(original, est))
        for metric, lower in (("ood_loss", True), ("next_token_acc", False), ("last_word_acc", False)):
            rows.append(difference_claim("C6", est[metric], original[metric], "EST", "Original",
                                         f"{metric} (proxy)", claimed_lower=lower))
    else:
        rows += [_row(c, "Table 2 results missing", verdict="not measured") for c in ("C1", "C2", "C6")]
    rows.append(matched_claim(ladder))
    rows.append(iso_loss_claim(ladder))
    rows.append(transition_claim(transitions))
    rows.append(slope_claim(slope))
    rows.append(slope_claim(slope_lr, "C4 per LR", "unit of cumulative LR"))
    trace_e, trace_o = _label(table5, "EST"), _label(table5, "Original")
    rows.append(difference_claim("C5", trace_e.get("trace", pd.Series(dtype=float)),
                                 trace_o.get("trace", pd.Series(dtype=float)), "EST", "Original",
                                 "Tr(H) at equal steps", digits=4))
    if equal_loss is None or equal_loss.empty:
        rows.append(_row("C5 at equal loss", "no Original run at EST's loss (the ladder's runs)",
                         verdict="not measured"))
    else:
        rows.append(difference_claim("C5 at equal loss", trace_e.get("trace", pd.Series(dtype=float)),
                                     equal_loss["trace"], "EST", "Original at EST's loss",
                                     "Tr(H) at equal loss", digits=4))
    rows += scheduler_claims(table3)
    order = {c: i for i, c in enumerate(PAPER)}
    table = _verdicts(rows)
    return table.sort_values("claim", key=lambda s: s.map(order), kind="stable", ignore_index=True)
