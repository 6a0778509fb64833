"""The regime ladder (`est repro ladder`): does EST reach Original's loss with fewer FLOPs, and
how far into training (tokens per parameter) and at what model size?

Per rung of length r (tokens per parameter) and seed: EST, Original for the same steps, and
Original trained for EST's total FLOPs with its own complete LR schedule (the compute-matched
Original, section 4's comparison made fair). `fit_only` lengths add Original runs that widen the
loss-against-FLOPs curve. The size axis repeats the three arms at one length for several
models. Every finished run is written at once to `results/ladder.csv` with its provenance, and
re-running resumes (runs are shared with the tables by their directory).

`ladder_summary` turns the rows into, per rung: the gaps EST - Original and EST - matched
Original (Welch), and the iso-loss FLOPs saving: 1 - FLOPs(EST) / FLOPs Original needs to reach
EST's final loss, read from Original's curve of mean final loss against log FLOPs (piecewise
linear, made non-increasing), with a bootstrap interval over seeds; beside it the same saving
read off the Original arm's runs alone and off a power-law fit to all Original runs, since where
the curve is flat a few hundredths of a nat move the saving by tens of points.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.optimize import OptimizeWarning, curve_fit
from tqdm.auto import tqdm

from est_analysis.io import make_dirs
from est_analysis.model_config import get_config
from est_analysis.models import build_model
from est_analysis.plotting import ladder_figure, save
from est_analysis.repro.experiments import RunSpec
from est_analysis.repro.runner import ensure_trained, read_results, run_length, upsert_rows
from est_analysis.repro.workspace import Workspace, find_workspace
from est_analysis.stats import aligned, paired, welch
from est_analysis.training import RunDir, TrainConfig
from est_analysis.training.recipes import recipe_for

ARMS = ("Original", "EST", "Original at EST's FLOPs")
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Ladder:
    scale: str
    preset: str
    rungs: list[float]
    seeds: int
    fit_only: list[float]
    size_models: list[str]
    size_tokens_per_param: float
    size_seeds: int
    fingerprint: str | None


def load_ladder(scale: str) -> Ladder:
    spec = yaml.safe_load(files(__package__).joinpath("configs", "ladder.yaml").read_text())
    if scale not in spec["scales"]:
        raise ValueError(f"the ladder has no {scale!r} scale; choose one of {sorted(spec['scales'])}")
    at = spec["scales"][scale]
    sizes = at["sizes"]
    return Ladder(scale, spec["preset"], sorted(at["rungs"]), at["seeds"], sorted(at["fit_only"]),
                  sizes["models"], sizes["tokens_per_param"], sizes["seeds"], at.get("fingerprint"))


def model_params(config: TrainConfig) -> int:
    """Parameters of the run's model (embeddings included, as the paper's 124M counts them)."""
    resolved = config.resolved()
    vocab = recipe_for(resolved.scale, resolved.preset).vocab_size
    with torch.device("meta"):
        model = build_model(get_config(resolved.model).with_vocab(vocab))
    return sum(p.numel() for p in model.parameters())


def steps_for(config: TrainConfig, tokens_per_param: float) -> int:
    return max(1, round(tokens_per_param * model_params(config) / config.tokens_per_step()))


def matched_original(original: TrainConfig, original_record: dict, est_record: dict
                     ) -> TrainConfig:
    """Original trained for EST's total FLOPs (the nearest whole step) with its own complete
    LR schedule: the compute-matched comparison."""
    steps = original.resolved().steps
    return replace(original, steps=max(1, round(steps * est_record["total_flops"]
                                                / original_record["total_flops"])))


def paper_tokens_per_param(preset: str = "est-gpt2") -> float:
    """The paper's own run: tokens per parameter of `scale=paper` (GPT-2: 78.6 B / 124 M)."""
    config = TrainConfig(scale="paper", preset=preset).resolved()
    return config.steps * config.tokens_per_step() / model_params(config)


def _config(ladder: Ladder, method: str, seed: int, tokens_per_param: float,
            model: str | None = None) -> TrainConfig:
    """The run's config; model and steps left None where they are the scale's own, so that a
    rung at the scale's length is the very run its tables train."""
    recipe = recipe_for(ladder.scale, ladder.preset)
    base = TrainConfig(method=method, preset=ladder.preset, scale=ladder.scale, seed=seed,
                       model=None if model in (None, recipe.model) else model)
    steps = steps_for(base, tokens_per_param)
    return replace(base, steps=None if steps == recipe.steps else steps)


def _row(axis: str, rung: float, arm: str, spec: RunSpec, out: RunDir, record: dict,
         workspace: Workspace) -> dict:
    return {"axis": axis, "rung": rung, "arm": arm, "model": record["model"],
            "params": record["params"], "seed": spec.config.seed, "steps": record["steps"],
            **run_length(spec.config, record), "final_val_loss": record["final_val_loss"],
            "total_flops": record["total_flops"], "train_wall_s": record["train_wall_s"],
            "run_dir": workspace.recorded(out.path), "commit": record["commit"],
            "config_hash": record["config_hash"], "device": record["device"],
            "machine": record["machine"], "torch": record["torch"]}


def run_ladder(scale: str, axes: tuple[str, ...] = ("length", "size"), progress: bool = True
               ) -> pd.DataFrame:
    """Train (or reuse) every run of the ladder at `scale`; returns and writes its rows."""
    ladder = load_ladder(scale)
    workspace = find_workspace(scale=scale)
    path = workspace.results / "ladder.csv"
    make_dirs(workspace.results)
    plan = []  # (axis, rung, seeds, model, with EST)
    if "length" in axes:
        plan += [("length", r, ladder.seeds, None, True) for r in ladder.rungs]
        plan += [("length", r, ladder.seeds, None, False) for r in ladder.fit_only]
    if "size" in axes:
        plan += [("size", ladder.size_tokens_per_param, ladder.size_seeds, m, True)
                 for m in ladder.size_models]
    rows = []
    bar = tqdm(total=sum(seeds * (3 if est else 1) for _, _, seeds, _, est in plan),
               desc=f"ladder at {scale}", unit="run", disable=not progress)

    def done(axis: str, rung: float, arm: str, config: TrainConfig) -> dict:
        spec = RunSpec(arm, config)
        out = RunDir(workspace.runs / scale / spec.key)
        record = ensure_trained(spec, out, progress, ladder.fingerprint)
        rows.append(_row(axis, rung, arm, spec, out, record, workspace))
        upsert_rows(path, pd.DataFrame(rows).assign(scale=scale), scale, key=("axis", "run_dir"))
        bar.update()
        return record

    for axis, rung, seeds, model, with_est in plan:
        for seed in range(seeds):
            original = _config(ladder, "original", seed, rung, model)
            orig = done(axis, rung, "Original", original)
            if not with_est:
                continue
            est = done(axis, rung, "EST", replace(original, method="est"))
            done(axis, rung, "Original at EST's FLOPs", matched_original(original, orig, est))
    bar.close()
    if rows:  # the axes run, whole: rows no longer planned on them go, other axes' stay
        upsert_rows(path, pd.DataFrame(rows).assign(scale=scale), scale, key=("axis",))
    return read_results(path)


def loss_curve(originals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Original's mean final loss per length against log FLOPs, sorted by FLOPs and made
    non-increasing (the best loss reached with at most those FLOPs)."""
    means = originals.groupby("total_flops")["final_val_loss"].mean().sort_index()
    return np.log(means.index.to_numpy(float)), np.minimum.accumulate(means.to_numpy(float))


def flops_to_reach(log_flops: np.ndarray, losses: np.ndarray, loss: float) -> tuple[float, str]:
    """(FLOPs, bound): the FLOPs at which the curve reaches `loss`, linear in log FLOPs between
    lengths. Outside the measured losses nothing is extrapolated: bound 'at most' (the shortest
    Original already reaches it) or 'at least' (no Original reaches it) names what is known."""
    reached = np.flatnonzero(losses <= loss)
    if not reached.size:
        return math.exp(log_flops[-1]), "at least"
    i = int(reached[0])
    if i == 0:
        return math.exp(log_flops[0]), "at most" if losses[0] < loss else ""
    fraction = (loss - losses[i - 1]) / (losses[i] - losses[i - 1])
    return math.exp(log_flops[i - 1] + fraction * (log_flops[i] - log_flops[i - 1])), ""


def saving_on(est: pd.DataFrame, originals: pd.DataFrame) -> tuple[float, str]:
    """(1 - FLOPs(EST) / FLOPs `originals`' piecewise curve needs for EST's mean loss, bound):
    FLOPs needed at most gives a saving at most, at least a saving at least."""
    needed, bound = flops_to_reach(*loss_curve(originals), est["final_val_loss"].mean())
    return 1 - est["total_flops"].mean() / needed, bound


def power_law_saving(est: pd.DataFrame, originals: pd.DataFrame) -> tuple[float, str]:
    """(saving, bound) read off a smooth monotone curve instead of the piecewise one: the least
    squares fit L(F) = E + A F^-alpha to every Original run (scipy curve_fit). EST's loss at or
    below the fitted floor E is reached by no Original: 'at least' (the FLOPs of the longest
    Original), as `flops_to_reach` says outside its range. nan when the fit does not converge."""
    log_flops = np.log(originals["total_flops"].to_numpy(float))
    losses = originals["final_val_loss"].to_numpy(float)
    curve = lambda x, floor, log_a, alpha: floor + np.exp(log_a - alpha * x)  # noqa: E731
    try:
        with warnings.catch_warnings():  # the covariance is not used: its warning says nothing
            warnings.simplefilter("ignore", OptimizeWarning)
            (floor, log_a, alpha), _ = curve_fit(
                curve, log_flops, losses, p0=[losses.min() - 0.3, 0.3 * log_flops.mean(), 0.3],
                bounds=([0.0, -100.0, 0.0], [losses.min(), 500.0, 5.0]), maxfev=20000)
    except (RuntimeError, ValueError):  # too few lengths, or no convergence
        return math.nan, ""
    loss = est["final_val_loss"].mean()
    if loss <= floor:
        needed, bound = math.exp(log_flops.max()), "at least"
    else:
        needed, bound = math.exp((log_a - math.log(loss - floor)) / alpha), ""
    return 1 - est["total_flops"].mean() / needed, bound


def iso_loss_saving(est: pd.DataFrame, originals: pd.DataFrame, seed: int = 0
                    ) -> tuple[float, float, float, float, str]:
    """(saving, bootstrap 2.5 %, 97.5 %, bootstrap p that the saving is <= 0, bound):
    1 - FLOPs(EST) / FLOPs Original needs to reach
    EST's mean final loss ('at least'/'at most' when that loss is outside Original's measured
    range: a bound, see `flops_to_reach`). The bootstrap resamples EST's seeds and the seeds of
    each Original length; with one EST seed it gives no interval."""
    estimate, bound = saving_on(est, originals)
    rng = np.random.default_rng(seed)
    groups = [g for _, g in originals.groupby("total_flops")]
    draws = []
    for _ in range(BOOTSTRAP):
        e = est.sample(len(est), replace=True, random_state=rng)
        o = pd.concat([g.sample(len(g), replace=True, random_state=rng) for g in groups])
        draws.append(saving_on(e, o)[0])
    if len(est) < 2:
        return estimate, math.nan, math.nan, math.nan, bound
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    p = (1 + np.sum(np.asarray(draws) <= 0)) / (1 + len(draws))
    return estimate, float(low), float(high), float(p), bound


def ladder_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (axis, model, rung) that has EST runs: losses, the two gaps with Welch
    intervals and p-values, FLOPs ratio and iso-loss saving."""
    lines = []
    originals_of = {m: g[g["arm"] != "EST"].drop_duplicates("run_dir")
                    for m, g in rows.groupby("model")}
    for (axis, model, rung), group in rows.groupby(["axis", "model", "rung"], sort=True):
        arm = {a: group[group["arm"] == a] for a in ARMS}
        if arm["EST"].empty or arm["Original"].empty:
            continue
        est_loss = arm["EST"]["final_val_loss"]
        line = {"axis": axis, "model": model, "params": int(group["params"].iloc[0]), "rung": rung,
                "tokens_per_param": float(arm["Original"]["tokens_per_param"].mean()),
                "passes": float(arm["Original"]["passes"].mean()), "seeds": len(arm["EST"]),
                "original_loss": arm["Original"]["final_val_loss"].mean(),
                "est_loss": est_loss.mean(), "est_loss_std": est_loss.std(),
                "flops_ratio": arm["EST"]["total_flops"].mean() / arm["Original"]["total_flops"].mean()}
        for name, other in (("gap", arm["Original"]), ("gap_matched", arm["Original at EST's FLOPs"])):
            if other.empty:
                continue
            d = welch(est_loss, other["final_val_loss"])
            line |= {name: d.estimate, f"{name}_low": d.low, f"{name}_high": d.high, f"{name}_p": d.p}
            pairs = aligned(arm["EST"].set_index("seed")["final_val_loss"],
                            other.set_index("seed")["final_val_loss"])
            if len(pairs[0]):  # the same seed: the same initialisation and data order
                e = paired(*pairs)
                line |= {f"{name}_paired_low": e.low, f"{name}_paired_high": e.high,
                         f"{name}_paired_p": e.p}
        line["matched_loss"] = arm["Original at EST's FLOPs"]["final_val_loss"].mean()
        saving, low, high, p, bound = iso_loss_saving(arm["EST"], originals_of[model])
        line |= {"iso_loss_saving": saving, "iso_loss_saving_low": low,
                 "iso_loss_saving_high": high, "iso_loss_saving_p": p, "iso_loss_bound": bound}
        # the same saving read off other curves: how much the figure rests on the curve's shape
        arm_only = originals_of[model][originals_of[model]["arm"] == "Original"]
        line["iso_loss_saving_original_arm"], line["iso_loss_bound_original_arm"] = saving_on(
            arm["EST"], arm_only)
        line["iso_loss_saving_fit"], line["iso_loss_bound_fit"] = power_law_saving(
            arm["EST"], originals_of[model])
        lines.append(line)
    return pd.DataFrame(lines)


def report_ladder(scale: str, figures_dir: Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """`results/ladder_summary.csv` and `<figures_dir>/ladder_<scale>.png|pdf` (default the
    workspace's figures/) from the ladder's rows at `scale` (those already finished); returns
    the summary and the figure files."""
    workspace = find_workspace(scale=scale)
    path = workspace.results / "ladder.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `est repro ladder --scale {scale}`")
    rows = read_results(path)
    rows = rows[rows["scale"] == scale]
    summary = ladder_summary(rows).assign(scale=scale)
    upsert_rows(workspace.results / "ladder_summary.csv", summary, scale)
    regimes = {"GPT-2": paper_tokens_per_param("est-gpt2"),
               "TinyLlama": paper_tokens_per_param("est-tinyllama")}
    width_path = workspace.results / "width.csv"
    width = width_gaps(read_results(width_path).query("scale == @scale")) if width_path.exists() else None
    figure = save(ladder_figure(summary, regimes, width if width is not None and len(width) else None),
                  (figures_dir or workspace.figures) / f"ladder_{scale}")
    return summary, figure


def width_gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and length of the width study: d_model and EST minus Original at EST's FLOPs,
    paired by seed (the interval is nan with one seed)."""
    lines = []
    for _, group in rows.groupby("group", sort=False):  # a model at one length, all its arms
        est_rows = group[group["arm"] == "EST"]
        if est_rows.empty:
            continue
        model, tpp = est_rows["model"].iloc[0], round(float(est_rows["tokens_per_param"].mean()), 1)
        pairs = aligned(est_rows.set_index("seed")["final_val_loss"],
                        group[group["arm"] == "Original at EST's FLOPs"].set_index("seed")["final_val_loss"])
        if not len(pairs[0]):
            continue
        d = paired(*pairs)
        lines.append({"model": model, "d_model": get_config(model).d_model, "tokens_per_param": tpp,
                      "seeds": d.n_a, "diff": d.estimate, "diff_low": d.low, "diff_high": d.high})
    return pd.DataFrame(lines)
