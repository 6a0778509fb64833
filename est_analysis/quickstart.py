"""The main job (`est quickstart`): does EST save compute at a length where the comparison
means something, and what does the curvature of its final model look like (section 5)?

Three runs of the regime model (`gpt2-regime`: 4 layers, d = 32, 69 k parameters) at 64
tokens per parameter, on the same data and seed: Original, EST (`est-gpt2`, the paper's
schedule) and Original trained for EST's FLOPs with its own complete schedule (the
compute-matched Original: the comparison that says whether EST saves compute). They are the
ladder's rung-64 runs of the seed (`est repro ladder --scale regime`), trained here in parallel
processes, one thread each; then Hutch++ estimates the Hessian trace of each final model with
Table 5's settings. One seed shows what happens in this run, not whether it holds: the verdict
sets it beside the committed multi-seed result for the same setting.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from est_analysis.cost.flops import step_flops
from est_analysis.io import atomic_write_text
from est_analysis.models import get_config
from est_analysis.repro.conclusions import committed_cell, stated
from est_analysis.repro.experiments import RunSpec
from est_analysis.repro.ladder import matched_original, steps_for
from est_analysis.repro.runner import curvature_trace, ensure_trained
from est_analysis.subnet import Subnet
from est_analysis.training import RunDir, TrainConfig
from est_analysis.training.recipes import recipe_for

TOKENS_PER_PARAM = 64
HESSIAN = {"matvecs": 99, "batches": 2, "data": "train"}  # Table 5's (configs/table5.yaml)
EVAL_EVERY = 250  # the ladder's runs validate every 1000 steps; evaluation changes no training number
ARMS = ("Original", "EST", "Original at EST's FLOPs")
MODEL = "gpt2-regime"  # the ladder's length-axis model (its committed cells are named after it)


def configs(seed: int = 0, tokens_per_param: float = TOKENS_PER_PARAM) -> dict[str, TrainConfig]:
    """Original and EST at `tokens_per_param` (the matched arm needs EST's measured FLOPs)."""
    base = TrainConfig(method="original", preset="est-gpt2", scale="regime", seed=seed, threads=1,
                       eval_every=EVAL_EVERY)
    original = replace(base, steps=steps_for(base, tokens_per_param))
    return {"Original": original, "EST": replace(original, method="est")}


def _train_and_trace(arm: str, config: TrainConfig, path: Path) -> dict:
    """One arm in a worker process: its run (trained, resumed or reused) and its trace."""
    out = RunDir(path)
    reused = out.finished
    record = ensure_trained(RunSpec(arm, config), out, progress=False)
    return record | curvature_trace(out, HESSIAN) | {"arm": arm, "run_dir": str(path), "reused": reused}


def _steps_done(paths: list[Path]) -> int:
    """Steps logged so far by the runs (lines of their metrics.csv)."""
    done = 0
    for path in paths:
        metrics = path / "metrics.csv"
        if metrics.exists():
            with metrics.open("rb") as f:
                done += max(0, sum(1 for _ in f) - 1)
    return done


def run_quickstart(out: str | Path, seed: int = 0, tokens_per_param: float = TOKENS_PER_PARAM,
                   workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) the three arms under `out` and return the verdict table (also written
    to `out/quickstart.csv`)."""
    out = Path(out).expanduser()
    arms = configs(seed, tokens_per_param)
    for config in arms.values():  # a schedule too short for its stages fails before any training
        config.resolved().schedule()
    paths = {arm: out / name for arm, name in
             zip(ARMS, ("original", "est", "original-at-est-flops"))}
    steps = arms["Original"].resolved().steps
    total = 2 * steps + matched_steps(arms)  # the bar's total is known before any step
    records: dict[str, dict] = {}
    context = multiprocessing.get_context("spawn")  # torch in a forked child is unsafe
    with ProcessPoolExecutor(workers, mp_context=context) as pool, \
            tqdm(total=total, unit="step", desc="quickstart", disable=not progress) as bar:
        pending: dict[Future, str] = {pool.submit(_train_and_trace, arm, arms[arm], paths[arm]): arm
                                      for arm in ("Original", "EST")}
        while pending:
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                arm = pending.pop(future)
                records[arm] = future.result()
                if arm == "EST":  # now the compute-matched arm's length is known
                    matched = matched_original(arms["Original"], _flops_record(paths["Original"], arms["Original"]),
                                               records["EST"])
                    arms[ARMS[2]] = matched
                    bar.total = 2 * steps + matched.resolved().steps
                    pending[pool.submit(_train_and_trace, ARMS[2], matched, paths[ARMS[2]])] = ARMS[2]
            bar.n = min(bar.total, _steps_done(list(paths.values())))
            bar.set_postfix_str("training" if bar.n < bar.total else "Hessian traces")
    table = verdict_table([records[arm] for arm in ARMS])
    atomic_write_text(out / "quickstart.csv", table.to_csv(index=False))
    return table


def matched_steps(arms: dict[str, TrainConfig]) -> int:
    """The compute-matched Original's length before anything is trained: EST's FLOPs follow
    from its schedule (every subnet at a stage's rates has the same size), Original's from its
    steps. Equal to the length `matched_original` gives from the measured FLOPs."""
    original, est = arms["Original"].resolved(), arms["EST"].resolved()
    model = get_config(original.model).with_vocab(recipe_for(original.scale, original.preset).vocab_size)
    per_step = lambda subnet: original.grad_accum * step_flops(model, subnet, original.batch_size, original.seq_len)  # noqa: E731
    schedule = est.schedule()
    est_flops = sum((end - start) * per_step(Subnet.for_step(model, rates, est.seed, start))
                    for start, end, rates in zip(schedule.stage_starts(), schedule.boundaries, schedule.rates))
    return matched_original(original, {"total_flops": original.steps * per_step(None)},
                            {"total_flops": est_flops}).resolved().steps


def _flops_record(path: Path, config: TrainConfig) -> dict:
    """Original's total FLOPs before its run ends: its step FLOPs are constant, so they are
    steps x the first step's (what `matched_original` needs)."""
    start = time.monotonic()
    while not (path / "metrics.csv").exists() or _steps_done([path]) < 1:
        if time.monotonic() - start > 600:
            raise RuntimeError(f"{path} logged no step in 10 minutes")
        time.sleep(0.5)
    first = pd.read_csv(path / "metrics.csv", nrows=1)
    return {"total_flops": int(first["step_flops"].iloc[0]) * config.resolved().steps}


def verdict_table(records: list[dict]) -> pd.DataFrame:
    """One row per arm: loss, FLOPs, saving and gap to the compute-matched Original, trace,
    and time: `train_cpu_s` is the CPU time of the arm's own training steps (comparable between
    arms that ran side by side; `cpu_saving` is EST's against Original's), `train_wall_s` the
    wall time while the arms shared the machine (not comparable)."""
    table = pd.DataFrame([{
        "arm": r["arm"], "steps": r["steps"], "final_val_loss": r["final_val_loss"],
        "total_flops": r["total_flops"], "trace": r["trace"], "trace_ci_low": r["trace_ci_low"],
        "trace_ci_high": r["trace_ci_high"], "train_cpu_s": r.get("train_cpu_s", math.nan),
        "train_wall_s": r["train_wall_s"], "reused": r.get("reused", False),
        "run_dir": r["run_dir"], "commit": r["commit"], "machine": r["machine"]} for r in records])
    original, matched = table.iloc[0], table.iloc[2]
    table.insert(4, "flops_saving", 1 - table["total_flops"] / original["total_flops"])
    table.insert(5, "cpu_saving", 1 - table["train_cpu_s"] / original["train_cpu_s"])
    table.insert(6, "gap_to_matched", table["final_val_loss"] - matched["final_val_loss"])
    return table


def committed_result(tokens_per_param: float = TOKENS_PER_PARAM) -> pd.Series | None:
    """The committed multi-seed result at this length (the ladder's cell in
    `conclusions.matched_cells`, read from the checkout's paper_repro/results), or None outside
    a checkout or at a length the ladder did not run."""
    return committed_cell(f"{MODEL} @ {tokens_per_param:g} tok/param")


def verdict(table: pd.DataFrame, committed: pd.Series | None) -> str:
    """What the table shows, in plain sentences, and what one seed cannot show."""
    original, est, matched = (table.iloc[i] for i in range(3))
    gap = est["gap_to_matched"]
    saves = gap <= 0
    lines = [
        f"EST used {est['flops_saving']:.1%} fewer training FLOPs than Original ({est['cpu_saving']:.1%} "
        "less CPU time in its own training steps, measured) and ended "
        f"{est['final_val_loss'] - original['final_val_loss']:+.3f} nats from it. Against an "
        f"Original trained for the same FLOPs with its own schedule it is {gap:+.3f} nats: "
        + ("in this run EST saved compute (it beat plain training on the same budget)." if saves else
           "in this run EST did not save compute (plain training on the same budget did better)."),
        f"Hessian trace of the final models: Original {original['trace']:.4g}, EST "
        f"{est['trace']:.4g}, compute-matched {matched['trace']:.4g} (95 % CIs over Hutch++'s "
        f"probes on {HESSIAN['batches']} fixed training batches: they do not cover other batches "
        "or seeds).",
    ]
    if committed is None:
        lines.append("One seed is not a test: this run shows what happened with this seed only.")
    else:
        inside = committed["diff_low"] <= gap <= committed["diff_high"]
        lines.append(
            f"That is one seed, not a test. The committed result for this setting "
            f"(paper_repro/results/ladder.csv) is {stated(committed)}; this seed's {gap:+.3f} lies "
            + ("inside" if inside else "outside") + " its interval, and the committed verdict, "
            "not this run, is the result. Why, by width, component and learning rate: "
            "docs/reproduction.md.")
    lines.append("It does not show the paper's regime (GPT-2 124 M at ~630 tokens per "
                 "parameter): at 69 k parameters the subnetworks keep 2 heads of size 8.")
    return "\n".join(lines)
