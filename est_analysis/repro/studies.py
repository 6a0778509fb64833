"""Why EST trails at small scale (`est repro width|ablation|control|lr`, issue #24).

Four studies beside the ladder (`configs/studies.yaml`), each a list of cells (a group: a model,
an ablation variant, a peak LR, a schedule) whose arms are trained per seed:

- width: at fixed depth (4) and head size (8), Original, EST and the compute-matched Original
  for models whose heads grow with width, at fixed tokens per parameter;
- ablation: EST with one component sampled at a time at the paper's stage fractions, beside
  Original, EST and the matched Original of the same seeds and length;
- control: a slice of the training split seen for many passes, where Original overfits and a
  dropout-like regularizer should help: Original, EST and EST-ONE-STAGE, with their curves;
- lr: the three arms at each peak LR, and with the LR schedule swapped between GPT-2 and Llama.

The same seed gives every arm the same initialisation and data order, so arms of one seed are
paired. A run whose directory key is one of the ladder's is read from `results/ladder.csv` when
its directory is gone (runs are deterministic: same config, seed and machine, same numbers), so
the studies pair with the ladder's seeds without retraining them; a run the study itself
finished earlier is read back from its own CSV the same way, so a study resumes in a fresh
checkout that has its results but not its run directories. Each finished run is written
at once to `results/<study>.csv` (and the control's curves to `results/control_curves.csv`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from functools import partial
from importlib.resources import files
from typing import Callable, Iterator

import pandas as pd
import yaml
from tqdm.auto import tqdm

from est_analysis.cost.search import search_schedules
from est_analysis.io import make_dirs
from est_analysis.models import get_config
from est_analysis.repro.experiments import RunSpec, equivalence_margin
from est_analysis.repro.ladder import matched_original, steps_for
from est_analysis.repro.runner import ensure_trained, read_results, run_length, upsert_rows
from est_analysis.repro.workspace import find_workspace
from est_analysis.data import load_corpus
from est_analysis.schedule import PRESETS, Schedule
from est_analysis.stats import aligned, paired, paired_tost, welch
from est_analysis.training import RunDir, TrainConfig
from est_analysis.training.recipes import recipe_for

STUDIES = ("width", "ablation", "control", "lr", "instability", "schedules", "finals")
ARMS = ("Original", "EST", "Original at EST's FLOPs")
MATCHED_VARIANT = "Original at the variant's FLOPs"  # an ablation variant's compute-matched arm


def load_study(study: str, scale: str) -> tuple[dict, dict]:
    """(the study's settings at `scale`, the whole config file)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; choose one of {STUDIES}")
    spec = yaml.safe_load(files(__package__).joinpath("configs", "studies.yaml").read_text())
    if scale not in spec["scales"]:
        raise ValueError(f"the studies have no {scale!r} scale; choose one of {sorted(spec['scales'])}")
    return spec["scales"][scale][study], spec


def _own(config: TrainConfig, **fields: object) -> TrainConfig:
    """`config` with `fields` set, each left None where it equals the recipe's, so that a run at
    the recipe's values is the very run (directory key) the tables and the ladder train."""
    recipe = recipe_for(config.scale, config.preset)
    return replace(config, **{k: None if getattr(recipe, k, object()) == v else v
                              for k, v in fields.items()})


def _base(scale: str, preset: str, seed: int, tokens_per_param: float, model: str | None = None,
          **fields: object) -> TrainConfig:
    """Original at `tokens_per_param` of `model` (default the scale's), with `fields` set."""
    config = _own(TrainConfig(method="original", preset=preset, scale=scale, seed=seed),
                  model=model or recipe_for(scale, preset).model, **fields)
    return _own(config, steps=steps_for(config, tokens_per_param))


def stage_fractions(preset: str) -> list[float]:
    """A preset's stage boundaries as fractions of the run (est-gpt2: 2/15, 7/15, 1)."""
    spec = PRESETS[preset]
    return [float(Fraction(b, spec.paper_steps)) for b in spec.boundaries]


def stage_end_losses(metrics: pd.DataFrame) -> dict:
    """The validation loss at the end of each stage but the last (the run's evaluation at its
    last step in that stage, which the loop always makes), and that step: `stage1_end_val_loss`,
    `stage1_end_step`, ...; none for a one-stage run."""
    ends = metrics.groupby("stage")["step"].idxmax().sort_index().iloc[:-1]
    row = {}
    for stage, at in ends.items():
        row |= {f"stage{stage}_end_val_loss": metrics.loc[at, "val_loss"],
                f"stage{stage}_end_step": int(metrics.loc[at, "step"])}
    return row


def largest_rise(val_loss: pd.Series) -> float:
    """The largest excursion of the validation loss above its best so far (0 for a curve that
    never rises): how far a spike or a plateau-and-climb took the run back."""
    return float((val_loss - val_loss.cummin()).max())


class _Trainer:
    """Trains (or reuses) runs and writes each row of the study as soon as its run is done."""

    def __init__(self, study: str, scale: str, fingerprint: str | None, progress: bool) -> None:
        self.study, self.scale, self.fingerprint, self.progress = study, scale, fingerprint, progress
        self.workspace = find_workspace(scale=scale)
        make_dirs(self.workspace.results)
        self.path = self.workspace.results / f"{study}.csv"
        self.curves_path = self.workspace.results / f"{study}_curves.csv"  # validation curves
        self.recorded: dict[str, dict] = {}  # run directory -> (file, its recorded row)
        for source in (f"{study}.csv", "ladder.csv"):  # the ladder's row of a run it shares wins
            path = self.workspace.results / source
            rows = read_results(path) if path.exists() else pd.DataFrame(columns=["scale", "run_dir"])
            for row in rows[rows["scale"] == scale].to_dict("records"):
                if not isinstance(row.get("reused_from"), str):  # the run's own row (empty
                    # in the CSV), not a reuse of another file's
                    self.recorded[row["run_dir"]] = (source, row)
        self.rows: list[dict] = []
        self.curves: list[pd.DataFrame] = []
        curves = self.curves_path
        self.recorded_curves = (read_results(curves).query("scale == @scale") if curves.exists()
                                else pd.DataFrame(columns=["group", "arm", "seed"]))
        self.bar = tqdm(desc=f"{study} at {scale}", unit="run", disable=not progress)

    def record(self, spec: RunSpec) -> tuple[dict, RunDir | None, str]:
        """The run's summary and provenance, its directory (None: read from a results file),
        and the file it was read from ('' when trained or reused from its directory)."""
        out = RunDir(self.workspace.runs / self.scale / spec.key)
        source, known = self.recorded.get(self.workspace.recorded(out.path), ("", None))
        if not out.finished and known is not None:
            return known, None, source
        return ensure_trained(spec, out, self.progress, self.fingerprint), out, ""

    def __call__(self, group: str, arm: str, config: TrainConfig, curve: bool = False,
                 full: dict | None = None) -> dict:
        """Train or read back one run and write its row; with `full` (the Original's record)
        the row says what share of that Original's FLOPs the run saved."""
        spec = RunSpec(arm, config)
        record, out, source = self.record(spec)
        c = config.resolved()
        row = {"study": self.study, "scale": self.scale, "group": group, "arm": arm,
               "seed": c.seed, "model": record["model"], "params": record["params"],
               "preset": c.preset, "method": c.method, "method_options": json.dumps(
                   c.method_options, sort_keys=True) if c.method_options else "",
               "lr": c.lr, "lr_schedule": c.lr_schedule,
               "warmup_fraction": c.warmup_fraction, "train_fraction": c.train_fraction,
               "rates": "/".join(",".join(f"{p:g}" for p in r) for r in c.schedule().rates)
               if c.method == "est" else "", "steps": record["steps"], **run_length(config, record),
               "final_val_loss": record["final_val_loss"], "total_flops": record["total_flops"],
               "train_wall_s": record["train_wall_s"],
               "flops_saving": 1 - record["total_flops"] / full["total_flops"] if full else ""}
        if out is not None:
            metrics = out.read_metrics().dropna(subset=["val_loss"])
            best = metrics.loc[metrics["val_loss"].idxmin()]
            row |= {"best_val_loss": best["val_loss"], "best_val_step": int(best["step"]),
                    "largest_rise": largest_rise(metrics["val_loss"]), **stage_end_losses(metrics)}
            if curve:
                self.curves.append(metrics[["step", "train_loss", "val_loss"]].assign(
                    scale=self.scale, group=group, arm=arm, seed=c.seed))
        elif curve:  # read back with its row: keep its recorded curve
            old = self.recorded_curves
            self.curves.append(old[(old["group"] == group) & (old["arm"] == arm) & (old["seed"] == c.seed)])
        if out is None and source != "ladder.csv":  # this study's own row: keep what it measured
            row |= {k: record[k] for k in record
                    if k in ("best_val_loss", "best_val_step", "largest_rise") or k.startswith("stage")}
        row |= {"run_dir": record["run_dir"] if out is None else self.workspace.recorded(out.path),
                "reused_from": "ladder.csv" if source == "ladder.csv" else "",
                **{k: record[k] for k in ("commit", "config_hash", "device", "machine", "torch")}}
        self.rows.append(row)
        self.write(key=True)
        self.bar.update()
        return record

    def write(self, key: bool) -> None:
        """The rows (and control curves) so far: with `key` only theirs are replaced (a
        resumed study stopped partway keeps the rows it has not reached); without, the
        scale's rows become exactly these (the study finished)."""
        cell = ("group", "arm", "seed") if key else None
        upsert_rows(self.path, pd.DataFrame(self.rows), self.scale, cell)
        if self.curves:
            upsert_rows(self.curves_path, pd.concat(self.curves),
                        self.scale, cell)

    def variant(self, name: str, original: TrainConfig, config: TrainConfig) -> None:
        """An ablation variant and the Original trained for its FLOPs (its own schedule)."""
        full = self.original_record(original)
        est = self(name, f"EST, {name}", config, full=full)
        self(name, MATCHED_VARIANT, matched_original(original, full, est))

    def original_record(self, original: TrainConfig) -> dict:
        """The summary of the Original run `original` (trained or read back)."""
        return self.record(RunSpec("Original", original))[0]

    def three_arms(self, group: str, original: TrainConfig, curve: bool = False) -> tuple[dict, dict]:
        """Original, EST and Original at EST's FLOPs (the ladder's arms) from `original`."""
        orig = self(group, "Original", original, curve)
        est = self(group, "EST", replace(original, method="est"), curve)
        self(group, "Original at EST's FLOPs", matched_original(original, orig, est), curve)
        return orig, est


Cell = Callable[[], None]  # trains (or reads back) one cell's arms for one seed


def _width(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    for rung in at["tokens_per_param"]:
        for model in at["models"]:
            if rung > at.get("longest", {}).get(model, float("inf")):
                continue
            for seed in range(at["seeds"]):
                yield partial(train.three_arms, f"{model} @ {rung:g} tok/param",
                              _base(train.scale, spec["preset"], seed, rung, model))


def _ablation(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    """Per seed the reference (Original, EST, matched Original); then per variant and seed the
    variant and an Original trained for that variant's FLOPs."""
    fractions = stage_fractions(spec["preset"])
    originals = [_base(train.scale, spec["preset"], seed, at["tokens_per_param"])
                 for seed in range(at["seeds"])]
    for original in originals:
        yield partial(train.three_arms, "reference", original)
    for variant in at.get("variants", spec["variants"]):
        sampled = spec["variants"][variant]  # its rates, or {rates: ..., method_options: ...}
        rates, options = (sampled, None) if isinstance(sampled, list) else (
            sampled["rates"], sampled["method_options"])
        for original in originals:
            yield partial(train.variant, variant, original,
                          replace(original, method="est", stages=fractions, rates=rates,
                                  method_options=options))


def _control(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    scale, preset = train.scale, spec["preset"]
    recipe = recipe_for(scale, preset)
    subset = int(len(load_corpus("shakespeare", recipe.vocab_size).train) * at["train_fraction"])
    group = f"{at['passes']} passes over {at['train_fraction']:g} of the split"
    for seed in range(at["seeds"]):
        config = _own(TrainConfig(method="original", preset=preset, scale=scale, seed=seed),
                      model=at["model"], train_fraction=at["train_fraction"],
                      eval_every=at["eval_every"])
        steps = max(1, round(at["passes"] * subset / config.tokens_per_step()))
        original = _own(config, steps=steps)

        def cell(original: TrainConfig = original) -> None:
            train(group, "Original", original, curve=True)
            train(group, "EST", replace(original, method="est"), curve=True)
            train(group, "EST-ONE-STAGE", replace(original, method="est", preset="est-one-stage"),
                  curve=True)
        yield cell


def _lr(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    rung = at["tokens_per_param"]
    for seed in range(at["seeds"]):
        for lr in at["lrs"]:
            yield partial(train.three_arms, f"gpt2, lr {lr:g}",
                          _base(train.scale, spec["preset"], seed, rung, lr=lr))
        for name, fields in spec["schedules"].items():
            fields = dict(fields)
            yield partial(train.three_arms, name,
                          _base(train.scale, fields.pop("preset"), seed, rung, **fields))


def _instability(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    """One width cell again with its validation curves (every `eval_every` steps): the three
    arms, and EST at other peak LRs, to tell a spike or plateau from a slower smooth curve."""
    original = _base(train.scale, spec["preset"], at["seed"], at["tokens_per_param"], at["model"],
                     eval_every=at["eval_every"])
    group = f"{at['model']} @ {at['tokens_per_param']:g} tok/param, seed {at['seed']}"

    def cell() -> None:
        train.three_arms(group, original, curve=True)
        for lr in at["lrs"]:
            train(group, f"EST, lr {lr:g}", _own(replace(original, method="est"), lr=lr), curve=True)
    yield cell


def screen_candidates(scale: str, at: dict, spec: dict) -> list[tuple[str, list[int], list, dict]]:
    """(name, boundaries in steps, rates, further config fields) of the schedules the screen
    trains: for each search in `at["searches"]`, the `per_saving` schedules
    `cost.search_schedules` ranks first at each target saving, sampling only the search's
    components (duplicates once); then each of `at["adaptive"]`'s schedules under each of its
    switch thresholds (`--switch-slope`: its boundaries are the latest each stage may end)."""
    original = _base(scale, spec["preset"], 0, at["tokens_per_param"])
    steps, model = original.resolved().steps, get_config(original.resolved().model)
    found, seen = [], set()
    for search in at["searches"]:
        for target in search["savings"]:
            table = search_schedules(model, steps, target_saving=target, tolerance=at["tolerance"],
                                     stage_counts=tuple(at["stage_counts"]), grid=at["grid"],
                                     rate_values=tuple(at["rate_values"]), accounting="full",
                                     top=search["per_saving"], sampled=tuple(search["sample"]))
            for row in table.itertuples():
                key = (tuple(row.boundaries), tuple(row.rates))
                if key not in seen:
                    seen.add(key)
                    name = f"{_rates_text(row.rates)} to step {','.join(map(str, row.boundaries[:-1]))} ({row.saving:.1%} predicted)"
                    found.append((name, list(row.boundaries), [list(r) for r in row.rates], {}))
    for adaptive in at.get("adaptive", []):
        boundaries = list(Schedule.from_fractions(adaptive["stages"], adaptive["rates"], steps).boundaries)
        for slope in adaptive["switch_slope"]:
            name = (f"{_rates_text(adaptive['rates'])} switched at slope < {slope:g} of the "
                    f"stage's first, by step {','.join(map(str, boundaries[:-1]))} at the latest")
            found.append((name, boundaries, adaptive["rates"], {"switch_slope": slope}))
    return found


def _rates_text(rates: list) -> str:
    return "/".join(",".join(f"{p:g}" for p in r) for r in rates)


def _schedules(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    """The screen of issue #33 section 3: schedules found by the cost search, sampling only
    what the mechanism study allows, and adaptive ones, each trained beside an Original for its
    own FLOPs."""
    for seed in range(at["seeds"]):
        original = _base(train.scale, spec["preset"], seed, at["tokens_per_param"])
        for name, boundaries, rates, fields in screen_candidates(train.scale, at, spec):
            yield partial(train.variant, name, original,
                          replace(original, method="est", stages=boundaries, rates=rates, **fields))


def finalists(scale: str, at: dict, spec: dict, screen: pd.DataFrame
              ) -> list[tuple[str, list[float], list, dict]]:
    """(name, boundaries as fractions of the run, rates, further config fields) of the screen's
    `at["best"]` candidates: the lowest loss minus the Original of their own FLOPs in the
    screen's rows `screen` (every candidate screened), boundaries scaled from the screen's
    length. With `at["among"] == "searched"` only the cost search's candidates compete (the
    adaptive ones were screened after the finals were chosen)."""
    screened = spec["scales"][scale]["schedules"]
    candidates = screen_candidates(scale, screened, spec)
    if at.get("among") == "searched":
        candidates = [c for c in candidates if not c[3]]
    summary = study_summary(screen) if not screen.empty else pd.DataFrame(columns=["group", "diff"])
    missing = {name for name, _, _, _ in candidates} - set(summary["group"])
    if missing:
        raise ValueError(f"the finals take the schedule screen's best {at['best']}, but "
                         f"{len(missing)} of its {len(candidates)} candidates are not screened "
                         f"yet at {scale}: run `est repro schedules --scale {scale}` first")
    steps = _base(scale, spec["preset"], 0, screened["tokens_per_param"]).resolved().steps
    names = {name for name, _, _, _ in candidates}
    best = summary[summary["group"].isin(names)].sort_values("diff")["group"].head(at["best"]).tolist()
    return [(name, [b / steps for b in boundaries], rates, fields)
            for name in best for n, boundaries, rates, fields in candidates if n == name]


def _finals(train: _Trainer, at: dict, spec: dict) -> Iterator[Cell]:
    """Issue #33 section 3's finals: the screen's best candidates at the ablation's length
    and seeds, each beside an Original trained for its own FLOPs."""
    screen = read_results(train.workspace.results / "schedules.csv").query("scale == @train.scale") \
        if (train.workspace.results / "schedules.csv").exists() else pd.DataFrame()
    chosen = finalists(train.scale, at, spec, screen)
    for seed in range(at["seeds"]):
        original = _base(train.scale, spec["preset"], seed, at["tokens_per_param"])
        for name, fractions, rates, fields in chosen:
            yield partial(train.variant, name, original,
                          replace(original, method="est", stages=fractions, rates=rates, **fields))


RUNNERS: dict[str, Callable[[_Trainer, dict, dict], Iterator[Cell]]] = {
    "width": _width, "ablation": _ablation, "control": _control, "lr": _lr,
    "instability": _instability, "schedules": _schedules, "finals": _finals}


def planned_runs(study: str, scale: str) -> int:
    """How many rows (runs) `study` has at `scale` when it is complete (its config)."""
    at, spec = load_study(study, scale)
    if study == "width":
        cells = sum(rung <= at.get("longest", {}).get(model, float("inf"))
                    for rung in at["tokens_per_param"] for model in at["models"])
        return cells * at["seeds"] * len(ARMS)
    if study == "ablation":  # the variants' matched Originals of equal FLOPs are one run
        return at["seeds"] * (len(ARMS) + 2 * len(at.get("variants", spec["variants"])))
    if study == "control":
        return at["seeds"] * 3  # Original, EST, EST-ONE-STAGE
    if study == "instability":
        return len(ARMS) + len(at["lrs"])
    if study == "schedules":
        return at["seeds"] * 2 * len(screen_candidates(scale, at, spec))
    if study == "finals":
        return at["seeds"] * 2 * at["best"]
    return at["seeds"] * (len(at["lrs"]) + len(spec["schedules"])) * len(ARMS)


def run_study(study: str, scale: str, progress: bool = True, reverse: bool = False) -> pd.DataFrame:
    """Train (or reuse) every run of `study` at `scale`; returns its rows (results/<study>.csv).
    With `reverse` the cells are walked last to first, so that a second job on the same study
    meets the first in the middle (a run one job trains, the other waits for and reuses); the
    forward job then writes the plan's rows."""
    at, spec = load_study(study, scale)
    train = _Trainer(study, scale, spec["scales"][scale].get("fingerprint"), progress)
    cells = list(RUNNERS[study](train, at, spec))
    for cell in reversed(cells) if reverse else cells:
        cell()
    train.write(key=reverse)
    train.bar.close()
    return read_results(train.path).query("scale == @scale")


def compare_arms(a: pd.DataFrame, b: pd.DataFrame, column: str = "final_val_loss",
                 margin: float | None = None) -> dict:
    """Rows of arm a minus rows of arm b on `column`, paired by seed (the seeds both have) and
    by Welch (all of each), with the ratio of their mean FLOPs; with `margin`, also the paired
    TOST p that the two are equal within it (`p_tost`)."""
    pairs = aligned(a.set_index("seed")[column], b.set_index("seed")[column])
    d, w = paired(*pairs), welch(a[column], b[column])
    return {"seeds": d.n_a, "loss": a[column].mean(), "versus_loss": b[column].mean(),
            "diff": d.estimate, "diff_low": d.low, "diff_high": d.high, "p_paired": d.p,
            "p_welch": w.p, "flops_ratio": a["total_flops"].mean() / b["total_flops"].mean(),
            **({} if margin is None else {"p_tost": paired_tost(*pairs, margin)})}


def study_summary(rows: pd.DataFrame, margin: float | None = None) -> pd.DataFrame:
    """Per group, each arm against its references, paired by seed (Welch beside it):
    EST against Original and the compute-matched Original (width, lr); each ablation variant
    against Original and EST of the same seeds (with the share of EST's gap it carries) and
    against the Original trained for its own FLOPs, each with a paired TOST within `margin`
    (default: the scale's equivalence margin); the control's EST arms against Original on the
    final and the best validation loss."""
    lines = []
    arm = lambda g, name: g[g["arm"] == name]  # noqa: E731
    study = rows["study"].iloc[0]
    margin = margin if margin is not None else equivalence_margin(rows["scale"].iloc[0])
    reference = rows[rows["group"] == "reference"]
    for group, g in rows.groupby("group", sort=False):
        if study in ("width", "lr", "instability") and not arm(g, "EST").empty:
            for versus in ("Original at EST's FLOPs", "Original"):
                if not arm(g, versus).empty:
                    lines.append({"group": group, "arm": "EST", "versus": versus,
                                  **compare_arms(arm(g, "EST"), arm(g, versus))})
        elif study == "ablation" and group != "reference" and not arm(reference, "EST").empty:
            variant = g[g["arm"].str.startswith("EST, ")]
            gap = compare_arms(arm(reference, "EST"), arm(reference, "Original"))["diff"]
            for versus, against in (("Original", arm(reference, "Original")),
                                    ("EST", arm(reference, "EST")),
                                    (MATCHED_VARIANT, arm(g, MATCHED_VARIANT))):
                if variant.empty or against.empty:
                    continue
                line = {"group": group, "arm": variant.iloc[0]["arm"], "versus": versus,
                        **compare_arms(variant, against, margin=margin)}
                if versus == "Original":
                    line["share_of_est_gap"] = line["diff"] / gap
                lines.append(line)
        elif study in ("schedules", "finals") and not arm(g, MATCHED_VARIANT).empty:
            candidate = g[g["arm"].str.startswith("EST, ")]
            lines.append({"group": group, "arm": candidate.iloc[0]["arm"], "versus": MATCHED_VARIANT,
                          "flops_saving": candidate["flops_saving"].mean(),
                          **compare_arms(candidate, arm(g, MATCHED_VARIANT), margin=margin)})
        elif study == "control":
            for name in ("EST", "EST-ONE-STAGE"):
                for column in ("final_val_loss", "best_val_loss"):
                    if not arm(g, name).empty and not arm(g, "Original").empty:
                        lines.append({"group": group, "arm": name, "versus": "Original",
                                      "measure": column,
                                      **compare_arms(arm(g, name), arm(g, "Original"), column)})
            original = arm(g, "Original")
            if not original.empty:
                lines.append({"group": group, "arm": "Original", "versus": "its best",
                              "measure": "final - best val loss", "seeds": len(original),
                              "diff": (original["final_val_loss"] - original["best_val_loss"]).mean()})
    return pd.DataFrame(lines)
