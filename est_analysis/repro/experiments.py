"""Experiment groups as YAML (`configs/<table>.yaml`, package data): the rows of a table, each a
method and schedule preset trained with a number of seeds that depends on the scale.

    rows:   [{label, method, preset, seeds: main|extra, method_options: {...},
              train: {the row's own TrainConfig overrides}}]
    scales: {smoke|cpu|regime|paper: {seeds: {main: N, extra: M}, train: {TrainConfig overrides},
                                      hessian: {...}, fingerprint: "..."}}
    claims: {equivalence_margin: ...}   (fixed before the runs; repro.claims)

`fingerprint` pins a scale's runs to one tokenized corpus (text, tokenizer, validation split):
a data pipeline that tokenizes differently is refused instead of silently changing the runs.

Runs are identified by (scale, method, preset, options, seed, overrides), not by table, so
Table 3 and Table 5 reuse Table 2's Original and EST runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from est_analysis.training import TrainConfig
from est_analysis.training.recipes import SCALES

TABLES = ("table2", "table3", "table4", "table5", "inactive", "walltime")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a table row."""

    label: str
    config: TrainConfig

    @property
    def key(self) -> str:
        """Directory name: method-preset, a short hash of anything else that matters, seed."""
        c = self.config
        extra = {k: v for k, v in dataclasses.asdict(c).items()
                 if k not in ("method", "preset", "scale", "seed", "device", "threads", "ckpt_every",
                              "snapshot_every") and v != getattr(TrainConfig(), k)}
        readable = "".join(f"_{k}{v}" for k, v in sorted(extra.items()))
        suffix = (readable if len(readable) <= 40 and "/" not in readable
                  else f"_{hashlib.sha1(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:8]}")
        return f"{c.method}-{c.preset}{suffix}/seed{c.seed}"


@dataclass
class Experiment:
    table: str
    scale: str
    description: str
    runs: list[RunSpec]
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. hessian, walltime
    fingerprint: str | None = None  # the tokenized corpus the runs are pinned to


def load_experiment(table: str, scale: str, seeds: int | None = None,
                    config_dir: Path | None = None) -> Experiment:
    """The runs of `table` at `scale`; `seeds` overrides the number of seeds of the rows marked
    `main` (the Original-vs-EST comparisons)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {TABLES}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds {seeds} must be at least 1")
    path = (config_dir or files(__package__).joinpath("configs")) / f"{table}.yaml"
    if not path.is_file():
        raise ValueError(f"{path} is missing: give a directory of <table>.yaml experiment configs")
    spec = yaml.safe_load(path.read_text())
    if table == "walltime":
        return Experiment(table, scale, spec["description"], [], {"walltime": spec["walltime"][scale]})
    at_scale = spec["scales"][scale]
    counts = dict(at_scale["seeds"])
    if seeds is not None:
        counts["main"] = seeds
    runs = []
    for row in spec["rows"]:
        for seed in range(counts[row.get("seeds", "main")]):
            overrides = at_scale.get("train", {}) | row.get("train", {})
            config = TrainConfig(method=row["method"], preset=row["preset"], scale=scale, seed=seed,
                                 method_options=row.get("method_options"), **overrides)
            runs.append(RunSpec(row["label"], config))
    settings = {"hessian": spec.get("hessian", {}) | at_scale.get("hessian", {})} if "hessian" in spec else {}
    if "claims" in spec:
        settings["claims"] = spec["claims"]
    return Experiment(table, scale, spec["description"], runs, settings, at_scale.get("fingerprint"))


def equivalence_margin(scale: str) -> float:
    """The margin (nats of validation loss) within which "equal loss" is tested at `scale`:
    `claims: equivalence_margin` of table2.yaml, fixed before the runs."""
    return load_experiment("table2", scale).settings["claims"]["equivalence_margin"]
