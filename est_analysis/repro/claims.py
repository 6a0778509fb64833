"""The paper's claims C1-C8, each judged from measured tables: the verdict text is computed
from the numbers (mean +- std over seeds, differences against their standard error), never
typed in. A claim whose inputs are missing is reported as 'not measured'.

Rule for "A is at least as good as B" claims: with d = mean(A) - mean(B) (lower is better) and
se = sqrt(s_A^2/n_A + s_B^2/n_B), the claim 'holds' if d < -2 se, 'holds within noise' if
|d| <= 2 se, and 'does not hold' if d > 2 se. With a single seed on a side, its spread is
unknown: the other side's is used for both (stated in the verdict).
"""

from __future__ import annotations

import math

import pandas as pd

PAPER = {"C1": "equal validation loss at 26.7 % fewer FLOPs (GPT-2 schedule)",
         "C2": "wall-clock speedup 1.22x",
         "C3": "loss drops at stage transitions",
         "C4": "steeper stage-3 slope at equal loss",
         "C5": "smaller Hessian trace (2510 vs 11763)",
         "C6": "better generalization (downstream scores)",
         "C7": "Table 3: EST-ONE-STAGE worst loss; the practical schedule the best trade-off",
         "C8": "stage 2 sampling MHA/MLP beats sampling layers (EST vs EST-THREE-STAGE)"}


def _stats(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna()
    return float(values.mean()), float(values.std()) if len(values) > 1 else math.nan, len(values)


def _fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + (f" +- {std:.{digits}f} (n={n})" if n > 1 else " (n=1)")


def compare(a: pd.Series, b: pd.Series, lower_is_better: bool = True) -> tuple[str, str]:
    """Verdict on 'a is at least as good as b', and the numbers behind it."""
    (ma, sa, na), (mb, sb, nb) = _stats(a), _stats(b)
    if na == 0 or nb == 0:
        return "not measured", ""
    note = ""
    if math.isnan(sa) or math.isnan(sb):
        known = sb if math.isnan(sa) else sa
        sa, sb, note = known, known, "; one side has one seed, its spread taken from the other"
    if math.isnan(sa):
        return "no seed spread (run more seeds)", f"{ma:.4g} vs {mb:.4g}"
    difference = (ma - mb) if lower_is_better else (mb - ma)
    se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    verdict = ("holds" if difference < -2 * se else
               "holds within noise" if difference <= 2 * se else "does not hold")
    return verdict, f"difference {ma - mb:+.4g} (2 se = {2 * se:.2g}){note}"


def _rows(table: pd.DataFrame | None, label: str) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame()
    return table[table["label"] == label]


def judge_claims(table2: pd.DataFrame | None = None, table3: pd.DataFrame | None = None,
                 table5: pd.DataFrame | None = None, transitions: pd.DataFrame | None = None,
                 slope: dict | None = None) -> pd.DataFrame:
    """One row per claim: what the paper says, what we measured, the verdict. `transitions`
    is `transition_table` output for EST runs (any seeds), `slope` a `slope_ratio` result
    (EST stage 3 against Original)."""
    rows = []

    def add(claim: str, measured: str, verdict: str) -> None:
        rows.append({"claim": claim, "paper": PAPER[claim], "measured": measured, "verdict": verdict})

    original, est = _rows(table2, "Original"), _rows(table2, "EST")
    if len(original) and len(est):
        verdict, detail = compare(est["final_val_loss"], original["final_val_loss"])
        add("C1", f"EST val loss {_fmt(*_stats(est['final_val_loss']))} vs Original "
                  f"{_fmt(*_stats(original['final_val_loss']))} at {est['flops_saving'].mean():.1%} "
                  f"fewer FLOPs; {detail}", verdict)
        speedup = original["train_wall_s"].mean() / est["train_wall_s"].mean()
        add("C2", f"{speedup:.2f}x training wall-clock ({est['machine'].iloc[0]})",
            "holds" if speedup > 1.0 else "does not hold")
        for metric, better in (("ood_loss", True), ("next_token_acc", False), ("last_word_acc", False)):
            verdict, detail = compare(est[metric], original[metric], lower_is_better=better)
            add("C6", f"{metric}: EST {_fmt(*_stats(est[metric]))} vs Original "
                      f"{_fmt(*_stats(original[metric]))}; {detail} (proxy)", verdict)
    else:
        for claim in ("C1", "C2", "C6"):
            add(claim, "Table 2 results missing", "not measured")
    if transitions is not None and len(transitions):
        significant = transitions["observed_drop"] > 2 * transitions["observed_drop_stderr"]
        drops = ", ".join(f"{d:+.3f}" for d in transitions["observed_drop"])
        add("C3", f"training-loss drop at {len(transitions)} boundaries: {drops}; Delta R "
                  f"{transitions['delta_R'].mean():+.3f} on average",
            "holds" if significant.all() else
            "partly holds" if significant.any() else "does not hold")
    else:
        add("C3", "no transition analysis", "not measured")
    if slope:
        verdict = ("holds" if slope["ci_low"] > 1 else "does not hold" if slope["ci_high"] < 1
                   else "inconclusive")
        add("C4", f"stage-3 slope ratio EST / Original {slope['ratio']:.2f} (95 % CI "
                  f"{slope['ci_low']:.2f}..{slope['ci_high']:.2f}, {slope['bins']} loss bins)", verdict)
    else:
        add("C4", "no slope comparison", "not measured")
    if table5 is not None and len(_rows(table5, "EST")) and len(_rows(table5, "Original")):
        e, o = _rows(table5, "EST")["trace"], _rows(table5, "Original")["trace"]
        verdict, detail = compare(e, o)
        add("C5", f"Tr(H) EST {_fmt(*_stats(e), digits=1)} vs Original {_fmt(*_stats(o), digits=1)}; "
                  f"{detail}", verdict.replace("holds within noise", "no difference beyond noise"))
    else:
        add("C5", "Table 5 results missing", "not measured")
    labels = set(table3["label"]) if table3 is not None and len(table3) else set()
    variants = ["EST-ONE-STAGE", "EST-TWO-STAGE-A", "EST-TWO-STAGE-B", "EST-TWO-STAGE-C",
                "EST-THREE-STAGE", "EST"]
    if set(variants) <= labels:
        loss = {v: _rows(table3, v)["final_val_loss"].mean() for v in variants}
        saving = {v: _rows(table3, v)["flops_saving"].mean() for v in variants}
        worst = max(loss, key=loss.get)
        rivals = [v for v in variants if v != "EST" and saving[v] >= saving["EST"] - 1e-9]
        best_tradeoff = all(loss["EST"] <= loss[v] for v in rivals)
        ordering = ", ".join(f"{v} {loss[v]:.3f}" for v in sorted(loss, key=loss.get))
        add("C7", f"val loss, best first: {ordering}; worst {worst}",
            "holds" if worst == "EST-ONE-STAGE" and best_tradeoff else
            "partly holds" if worst == "EST-ONE-STAGE" or best_tradeoff else "does not hold")
        verdict, detail = compare(_rows(table3, "EST")["final_val_loss"],
                                  _rows(table3, "EST-THREE-STAGE")["final_val_loss"])
        add("C8", f"EST {_fmt(*_stats(_rows(table3, 'EST')['final_val_loss']))} vs EST-THREE-STAGE "
                  f"{_fmt(*_stats(_rows(table3, 'EST-THREE-STAGE')['final_val_loss']))}; {detail}",
            verdict)
    else:
        add("C7", "Table 3 results missing", "not measured")
        add("C8", "Table 3 results missing", "not measured")
    return pd.DataFrame(rows).sort_values("claim", kind="stable", ignore_index=True)
