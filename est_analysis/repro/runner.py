"""`est repro`: train (or reuse) every run of a table, evaluate it, and write
`paper_repro/results/<table>.csv` with one row per run and its provenance.

Resumable: a finished run (one with a summary) is only re-read, and only if it was trained with
the settings its row asks for; an interrupted one resumes from its checkpoint; each row is
written to the CSV as soon as its run is done; results of other scales in the CSV are kept.
Provenance is recorded when a run finishes (`provenance.json`: commit, config hash, machine,
torch), so a row always names the code that trained it, not the code that assembled the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

import est_analysis
from est_analysis.hessian import HessianOperator, curvature_operator, hutchpp
from est_analysis.io import atomic_write_text, file_lock, make_dirs, read_json
from est_analysis.repro.experiments import Experiment, RunSpec, load_experiment
from est_analysis.repro.proxies import downstream_proxies
from est_analysis.repro.walltime import walltime_table
from est_analysis.repro.workspace import Workspace, find_workspace
from est_analysis.data import load_corpus
from est_analysis.training import RunDir, TrainConfig, load_run, train
from est_analysis.training.checkpoint import load_checkpoint
from est_analysis.training.recipes import recipe_for

SOURCE = Path(est_analysis.__file__).resolve().parent


def git_commit() -> str:
    """Short commit of the source checkout the package runs from, '+dirty' when the package's
    tracked files differ from it; for an installed package (no checkout) its version."""
    try:
        commit = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        # only the package's own files: the results CSVs a run writes are not code
        dirty = subprocess.run(["git", "-C", str(SOURCE), "status", "--porcelain", "-uno", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"est_analysis {est_analysis.__version__} (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({platform.system()})"


def config_hash(spec: RunSpec) -> str:
    resolved = dataclasses.asdict(spec.config.resolved())
    return hashlib.sha1(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]


def check_pinned_data(config: TrainConfig, pinned: str | None) -> None:
    """Refuse to train when the corpus tokenizes differently from the one the scale is pinned
    to (`fingerprint` in the experiment config)."""
    if pinned is None:
        return
    resolved = config.resolved()
    found = load_corpus(resolved.corpus, recipe_for(resolved.scale, resolved.preset).vocab_size)
    if found.fingerprint != pinned:
        raise ValueError(f"the {resolved.scale} runs are pinned to the tokenized corpus "
                         f"{pinned}, but {resolved.corpus!r} now tokenizes to "
                         f"{found.fingerprint} (its text, tokenizer or validation split "
                         "changed): train them at the commit that produced them, or re-run the "
                         "scale from scratch and update `fingerprint` in its config")


def run_lock(out: RunDir) -> AbstractContextManager:
    """Hold `<run>.lock` (an OS file lock, released if the process dies): two `est repro`
    commands sharing a run (a table and the ladder) train it once; the second waits, then
    reuses it."""
    return file_lock(out.path.with_name(out.path.name + ".lock"))


def ensure_trained(spec: RunSpec, out: RunDir, progress: bool, pinned: str | None = None) -> dict:
    """Train, resume or reuse the run in `out`; its summary plus provenance. A finished run is
    reused only if it was trained with the settings `spec` asks for (resuming an unfinished
    one is checked the same way by `train`) and, when `pinned`, on that tokenized corpus."""
    check_pinned_data(spec.config, pinned)
    with run_lock(out):
        return _train_or_reuse(spec, out, progress)


def _train_or_reuse(spec: RunSpec, out: RunDir, progress: bool) -> dict:
    if out.finished:
        trained_with = TrainConfig.from_dict(load_checkpoint(out.checkpoint)["config"], f"checkpoint {out.checkpoint}")
        differences = trained_with.differences(spec.config.resolved())
        if differences:
            listed = "; ".join(f"{k}: trained with {a!r}, this row asks for {b!r}"
                               for k, (a, b) in differences.items())
            raise ValueError(f"{out.path} holds a finished run trained with other settings "
                             f"({listed}); it is not reused. Move it away (or give another "
                             "--runs-root) to train this row anew")
    else:
        if out.has_run and not out.can_resume:  # stopped before its first checkpoint
            out.discard_unstarted_run()
        train(spec.config, out.path, resume=out.can_resume, progress=progress)
        provenance = {"commit": git_commit(), "config_hash": config_hash(spec),
                      "machine": machine(out.read_summary()["device"]), "torch": torch.__version__}
        atomic_write_text(out.provenance, json.dumps(provenance, indent=2))
    return out.read_summary() | read_json(out.provenance)


def _cached(path: Path, compute) -> dict:
    if not path.exists():
        atomic_write_text(path, json.dumps(compute(), indent=2))
    return read_json(path, "delete it to compute it again")


def curvature_trace(out: RunDir, settings: dict, operator: str = "hessian") -> dict:
    """Hutch++ trace of `operator`'s matrix at the run's final model (Table 5's `hessian`
    settings: products, batches, data; its `operators` list is not read here), cached in the
    run. The Hessian's columns are `trace`, `trace_ci_low`, ...; any other operator's carry its
    name as a prefix (`ggn_trace`, ...)."""
    settings = {k: v for k, v in settings.items() if k != "operators"}
    def compute() -> dict:
        run = load_run(out.path)
        op = curvature_operator(operator, run.model, run.batches(settings.get("data", "train"),
                                                                 settings["batches"]))
        estimate = hutchpp(op, matvecs=settings["matvecs"], seed=0)
        loss = {"trace_loss": op.loss} if isinstance(op, HessianOperator) else {}
        return {"trace": estimate.estimate, "trace_ci_low": estimate.ci_low,
                "trace_ci_high": estimate.ci_high, "trace_per_param": estimate.per_param,
                **loss, "trace_hvps": estimate.matvecs}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    values = _cached(out.evaluation(f"{operator}-{key}"), compute)
    prefix = "" if operator == "hessian" else operator.replace("-", "_") + "_"
    return {prefix + name: value for name, value in values.items()}


def _proxies(out: RunDir) -> dict:
    return _cached(out.evaluation("proxies"), lambda: downstream_proxies(load_run(out.path)))


def run_length(config: TrainConfig, record: dict) -> dict:
    """How far into training the run went: tokens per parameter and passes over the data."""
    c = config.resolved()
    tokens = record["steps"] * c.tokens_per_step()
    corpus = load_corpus(c.corpus, recipe_for(c.scale, c.preset).vocab_size)
    train_tokens = int(len(corpus.train) * c.train_fraction)
    return {"tokens": tokens, "tokens_per_param": tokens / record["params"],
            "passes": tokens / train_tokens}


def _row(experiment: Experiment, spec: RunSpec, out: RunDir, record: dict,
         workspace: Workspace) -> dict:
    row = {"table": experiment.table, "scale": experiment.scale, "label": spec.label,
           "method": spec.config.method, "preset": spec.config.preset, "seed": spec.config.seed,
           "steps": record["steps"], "model": record["model"], "params": record["params"],
           **run_length(spec.config, record),
           "final_val_loss": record["final_val_loss"], "total_flops": record["total_flops"],
           "train_wall_s": record["train_wall_s"]}
    row |= _proxies(out)
    if "hessian" in experiment.settings:
        for operator in experiment.settings["hessian"].get("operators", ["hessian"]):
            row |= curvature_trace(out, experiment.settings["hessian"], operator)
    row |= {"run_dir": workspace.recorded(out.path),
            "commit": record["commit"], "config_hash": record["config_hash"],
            "device": record["device"], "machine": record["machine"], "torch": record["torch"]}
    return row


def _with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """FLOPs saving and wall-clock speedup against the mean of the first row's label
    (Original) at the same scale."""
    reference = table[table["label"] == table["label"].iloc[0]]
    table["flops_saving"] = 1 - table["total_flops"] / reference["total_flops"].mean()
    table["speedup"] = reference["train_wall_s"].mean() / table["train_wall_s"]
    return table


def read_results(path: Path) -> pd.DataFrame:
    """A results CSV, its identifiers kept as text (a short commit such as 9292077 is not a
    number)."""
    return pd.read_csv(path, dtype={"commit": str, "config_hash": str})


def results_at(path: Path, scale: str) -> pd.DataFrame:
    """The rows of the results CSV at `path` at `scale` (none when the file does not exist)."""
    rows = read_results(path) if path.exists() else pd.DataFrame({"scale": []})
    return rows[rows["scale"] == scale]


def upsert_rows(path: Path, table: pd.DataFrame, scale: str,
                key: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Write `table` as this scale's rows of the CSV at `path`, atomically. Without `key` it
    replaces all of the scale's rows (a finished loop: cells no longer planned go). With `key`
    (the columns that name a row, e.g. run_dir) it replaces only the rows whose key `table`
    has, so a loop that writes as it goes and is stopped partway keeps the rows it had not
    reached yet: the only copy of a run whose directory is gone. Jobs writing one file take
    turns (`.NAME.lock` beside it), so that none loses another's rows."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        if path.exists():
            old = read_results(path)
            stale = old["scale"] == scale
            if key is not None:
                written = pd.MultiIndex.from_frame(table[list(key)].astype(str))
                stale &= pd.MultiIndex.from_frame(old.reindex(columns=list(key)).astype(str)).isin(written)
            table = pd.concat([old[~stale], table], ignore_index=True)
        atomic_write_text(path, table.to_csv(index=False))
    return table


def run_walltime(experiment: Experiment, results_dir: Path) -> pd.DataFrame:
    """Tables 8-9 (`repro.walltime`) at the scale's models and batch sizes, on the CPU."""
    settings = experiment.settings["walltime"]
    table = walltime_table(settings["models"].split(","),
                           [int(b) for b in str(settings["batches"]).split(",")], settings["seq"],
                           settings["repeats"], settings.get("threads", 2))
    table.insert(0, "scale", experiment.scale)
    table = table.assign(commit=git_commit(), machine=machine("cpu"), torch=torch.__version__)
    return upsert_rows(results_dir / "walltime.csv", table, experiment.scale)


def run_table(table: str, scale: str, seeds: int | None = None, runs_root: Path | None = None,
              results_dir: Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Every run of `table` at `scale`; returns (and writes) the table's rows at that scale.
    Runs and results go to the workspace's folders unless given (`repro.workspace`)."""
    workspace = find_workspace(scale=scale)
    runs_root, results_dir = runs_root or workspace.runs, results_dir or workspace.results
    experiment = load_experiment(table, scale, seeds)
    make_dirs(results_dir)
    if table == "walltime":
        return run_walltime(experiment, results_dir)
    rows = []
    for spec in tqdm(experiment.runs, desc=f"{table} at {scale}", unit="run", disable=not progress):
        out = RunDir(runs_root / scale / spec.key)
        record = ensure_trained(spec, out, progress, experiment.fingerprint)
        rows.append(_row(experiment, spec, out, record, workspace))
        result = _with_ratios(pd.DataFrame(rows))
        upsert_rows(results_dir / f"{table}.csv", result, scale, key=("run_dir",))  # as it is done
    upsert_rows(results_dir / f"{table}.csv", result, scale)  # the whole table: the plan's rows
    return result
