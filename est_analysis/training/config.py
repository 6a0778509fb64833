"""One training run's settings (`TrainConfig`), resolved against the scale's recipe.

Every field carries its one-line help in its metadata, and the command line is generated from
the fields (`est_analysis.cli.options`): a new field is a new `est train` flag and YAML key.
Fields left None take the value of the scale's recipe (`recipes.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from est_analysis.data import TokenData, load_data
from est_analysis.domains import (BOOLEAN, FRACTION, NONNEGATIVE, NONNEGATIVE_INT, OPEN_UNIT,
                                  POSITIVE, POSITIVE_INT, POSITIVE_OR_INF, PROBABILITY, UNIT, FINITE,
                                  check_fields)
from est_analysis.methods import METHODS, SubnetPolicy, build_policy
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import PRESETS, Schedule, parse_boundaries, parse_rates
from est_analysis.training.lr import LR_SCHEDULES
from est_analysis.training.optimizer import INACTIVE_MODES
from est_analysis.training.precision import PRECISIONS
from est_analysis.training.trackers import LOGGERS
from est_analysis.training.recipes import SCALES, recipe_for
from est_analysis.training.switch import SlopeSwitch

# fields that may change on resume without changing the numbers
RUNTIME_FIELDS = ("device", "threads", "ckpt_every", "snapshot_every", "peak_flops",
                  "logger")


def option(default: Any, help: str, **cli: Any) -> Any:
    """A config field with its help text; `cli` may give its `domain` (est_analysis.domains:
    how a flag, a YAML value or a Python value is parsed and checked), `choices`, `parse`
    (text -> value), `flag` (the option's name, default --field-name), `metavar` (its value's
    name in --help) and `repeat` (a flag given many times, each NAME=VALUE, collected into a
    mapping)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """One training run. Fields left None take the value of the scale's recipe."""

    preset: str = option("est-gpt2", "sampling-scheduler preset; it also picks the architecture "
                         "(est-tinyllama: Llama, others: GPT-2)", choices=tuple(sorted(PRESETS)))
    stages: list[float] | None = option(None, "custom schedule instead of the preset's: stage "
                                        "boundaries as fractions (0.2,0.5,1) or steps "
                                        "(20000,70000,150000); needs --rates",
                                        parse=parse_boundaries)
    rates: list[list[float]] | None = option(None, "p_H,p_M,p_L of each custom stage, "
                                             "'/'-separated: .5,.5,.5/.5,.5,1/1,1,1",
                                             parse=lambda text: [list(t) for t in parse_rates(text)])
    method: str = option("est", "est, original (the full model), or a baseline: staged (Staged "
                         "Training), msg (Masked Structural Growth), raptr (random path "
                         "training), layer-drop (progressive layer dropping)", choices=METHODS)
    switch_slope: float | None = option(None, "est: end each sampled stage early, once its "
                                        "training-loss slope per FLOP stays below this share of "
                                        "the slope it began with; the schedule's boundaries are "
                                        "then the latest each stage may end "
                                        "(est_analysis.training.switch)", domain=OPEN_UNIT)
    switch_window: int | None = option(None, "steps per loss window of --switch-slope "
                                       "(default: 1/50 of the run, at least 10)", domain=POSITIVE_INT)
    method_options: dict | None = option(None, "a method's own setting, repeatable: est "
                                         "neuron_scaling=inverted|update|classic; raptr "
                                         "fixed=first,last|first|last|none, scale=none|inverse; "
                                         "layer-drop theta=0.5, gamma=..., progressive=false "
                                         "(stochastic depth); msg ramp=0.033; staged "
                                         "grow_at=0.333, noise=0.001", flag="--method-option",
                                         repeat=True)
    scale: str = option("smoke", "model/batch/run size: smoke (seconds), cpu (minutes on 2 "
                        "cores, short training), regime (~300 tokens per parameter, the "
                        "paper's regime, on a 69 k-parameter model), paper (the paper's "
                        "settings)", choices=SCALES)
    model: str | None = option(None, "model config name (default: from preset and scale)")
    corpus: str = option("shakespeare", "'shakespeare', 'cpython-stdlib', or a path to a "
                         "text/jsonl file or a directory of them")
    data: str | None = option(None, "a directory of prepared data instead of --corpus: "
                              "train.bin, val.bin and meta.json from `est data prepare`, or "
                              "nanoGPT's files described by `est data describe`")
    tokenizer: str | None = option(None, "a pretrained tokenizer for --corpus (file or directory: "
                                   "tokenizer.json, vocab.json + merges.txt, *.tiktoken, "
                                   "SentencePiece *.model); the corpus is then prepared once "
                                   "into the cache. Default: a BPE trained on the corpus")
    init: str | None = option(None, "start from these weights instead of a random "
                              "initialisation: an est run (directory, checkpoint or snapshot) or "
                              "a local HF GPT-2/Llama directory; its model must be --model's and "
                              "its tokenizer the data's", metavar="RUN|HF_DIR")
    train_fraction: float = option(1.0, "train on only this leading fraction of the training "
                                   "split, in (0, 1] (a small data set: overfitting studies)", domain=UNIT)
    steps: int | None = option(None, "total training steps", domain=POSITIVE_INT)
    seed: int = option(0, "seed of the initialisation, data order and subnets", domain=NONNEGATIVE_INT)
    batch_size: int | None = option(None, "sequences per micro-batch (global: split across "
                                    "processes under --nproc / torchrun)", domain=POSITIVE_INT)
    grad_accum: int | None = option(None, "micro-batches per optimizer step", domain=POSITIVE_INT)
    seq_len: int | None = option(None, "tokens per sequence", domain=POSITIVE_INT)
    lr: float | None = option(None, "peak learning rate", domain=POSITIVE)
    lr_schedule: str | None = option(None, "learning-rate schedule (appendix A)",
                                     choices=LR_SCHEDULES)
    warmup_fraction: float | None = option(None, "linear warmup, as a fraction of the run", domain=FRACTION)
    min_lr_ratio: float | None = option(None, "final learning rate as a fraction of the peak", domain=PROBABILITY)
    weight_decay: float = option(0.1, "AdamW weight decay of matrices and embeddings", domain=NONNEGATIVE)
    beta1: float = option(0.9, "AdamW beta1", domain=FRACTION)
    beta2: float = option(0.95, "AdamW beta2", domain=FRACTION)
    grad_clip: float = option(1.0, "gradient-norm clipping threshold (inf: no clipping)", domain=POSITIVE_OR_INF)
    eval_every: int | None = option(None, "validate the full model every N steps", domain=POSITIVE_INT)
    eval_batches: int | None = option(None, "fixed validation batches per evaluation", domain=POSITIVE_INT)
    ckpt_every: int | None = option(None, "write checkpoint.pt every N steps (also at every "
                                    "stage boundary and the end)", domain=POSITIVE_INT)
    snapshot_every: int | None = option(None, "keep a model snapshot every N steps in "
                                        "snapshots/ (one is always kept at each stage "
                                        "boundary), for `est diagnose` trajectories", domain=POSITIVE_INT)
    inactive_params: str = option("dense", "optimizer treatment of parameters outside the "
                                  "subnet (est_analysis.training.optimizer)", choices=INACTIVE_MODES)
    precision: str = option("auto", "autocast precision of the forward pass; fp16 adds a "
                            "gradient scaler; auto: bf16 on CUDA, fp32 elsewhere",
                            choices=PRECISIONS)
    compile: bool = option(False, "torch.compile each transformer block (a few graphs per "
                           "stage, est_analysis.training.compiled); use the same setting for "
                           "every method you compare", domain=BOOLEAN)
    logger: str = option("csv", "where the metrics go besides metrics.csv (always written): "
                         "tensorboard (RUN/tensorboard), trackio (its local store), wandb "
                         "(offline, RUN/wandb); nothing reaches a network "
                         "(est_analysis.training.trackers)", choices=LOGGERS)
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    threads: int | None = option(None, "torch CPU threads", domain=POSITIVE_INT)
    peak_flops: float | None = option(None, "the device's peak FLOP/s at this precision, for the "
                                      "mfu column (default: looked up for known GPUs)", domain=POSITIVE)

    def __post_init__(self) -> None:
        """Every value parsed into its domain: YAML's `lr: 1e-3` (text to PyYAML) is a number,
        `compile: "no"` is false, and a bad value is named with its field and range."""
        check_fields(self)
        for f in dataclasses.fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{f.name}={value!r}; choose one of {', '.join(choices)}")
        self.stages = _boundaries(self.stages)
        self.rates = _rates(self.rates)

    def resolved(self) -> "TrainConfig":
        """Recipe values filled in for the fields left None, then validated."""
        recipe = dataclasses.asdict(recipe_for(self.scale, self.preset))
        filled = {k: recipe[k] if v is None and k in recipe else v
                  for k, v in dataclasses.asdict(self).items()}
        config = TrainConfig(**filled)
        config.validate()
        return config

    def validate(self) -> None:
        """Checks between fields (each field's own domain is checked on construction)."""
        if (self.stages is None) != (self.rates is None):
            raise ValueError("stages and rates go together: a custom schedule needs both "
                             "(--stages and --rates)")
        if self.method_options is not None and not isinstance(self.method_options, dict):
            raise ValueError(f"method_options={self.method_options!r} must be a mapping of "
                             "option names to values")
        if self.switch_slope is not None and self.method != "est":
            raise ValueError(f"switch_slope={self.switch_slope} switches EST's stages; method "
                             f"{self.method!r} has none to switch (leave --switch-slope out)")
        if self.switch_window is not None and self.switch_slope is None:
            raise ValueError("switch_window sets the window of --switch-slope; give both")
        if self.data is not None and (self.tokenizer is not None or self.corpus != "shakespeare"):
            raise ValueError("--data names prepared tokens; it goes without --corpus and "
                             "--tokenizer (prepare the corpus with `est data prepare` instead)")

    def load_data(self, progress: bool = False) -> TokenData:
        """The run's tokens (`--data`, `--corpus` with `--tokenizer`, or `--corpus` alone)."""
        if self.scale == "paper" and self.data is None and self.tokenizer is None:
            raise ValueError("--scale paper trains GPT-2 124M / TinyLlama 1.1B and needs your "
                             "corpus and a pretrained tokenizer: pass --data DIR (made by `est "
                             "data prepare CORPUS --tokenizer FILE --out DIR`) or --corpus PATH "
                             "--tokenizer FILE. The built-in corpora are too small for it")
        data = load_data(self.corpus, recipe_for(self.scale, self.preset).vocab_size, self.data,
                         self.tokenizer, progress)
        if self.train_fraction < 1:
            data = dataclasses.replace(data, train=data.train[:int(len(data.train) * self.train_fraction)])
        return data

    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step (all micro-batches)."""
        c = self.resolved()
        return c.batch_size * c.grad_accum * c.seq_len

    def schedule(self) -> Schedule:
        """The custom schedule if given, else the preset's, scaled to `steps`."""
        if self.stages is not None:
            return Schedule.custom(self.stages, [tuple(r) for r in self.rates], self.steps)
        return Schedule.preset(self.preset, self.steps)

    def stage_switch(self) -> SlopeSwitch | None:
        """The adaptive stage switch of `switch_slope` (resolved config), if it is set."""
        if self.switch_slope is None:
            return None
        return SlopeSwitch(self.switch_slope, self.switch_window or max(10, self.steps // 50))

    def policy(self, model_config: ModelConfig) -> SubnetPolicy:
        """The method's policy for this run: EST follows the preset or custom schedule, RAPTR a
        custom schedule if given, the other methods their own stages."""
        custom = self.stages is not None
        schedule = self.schedule() if self.method == "est" or custom else None
        return build_policy(self.method, model_config, self.steps, self.seed, schedule,
                            self.method_options)

    def differences(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """Field -> (self's value, other's) for every field that changes a run's numbers."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (mine[k], theirs[k]) for k in mine
                if k not in RUNTIME_FIELDS and mine[k] != theirs[k]}

    @staticmethod
    def from_yaml(path: str | Path, **overrides: object) -> "TrainConfig":
        """Fields from a YAML mapping, then non-None `overrides` on top."""
        try:
            fields = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path} does not exist") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"config file {path} is not UTF-8 text (byte {err.start}): give a "
                             "YAML file") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"config file {path} is not valid YAML{where}: "
                             f"{getattr(err, 'problem', None) or err}") from None
        if isinstance(fields, dict):
            fields.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(fields, f"config file {path}")

    @staticmethod
    def from_dict(fields: object, source: str) -> "TrainConfig":
        """A config from the mapping `fields` read from `source` (a YAML file, a checkpoint, an
        export record): a ValueError naming `source` for a non-mapping or an unknown field."""
        if not isinstance(fields, dict):
            raise ValueError(f"{source} must hold a mapping of TrainConfig fields")
        if "tensorboard" in fields:  # written before --logger replaced --tensorboard
            fields = {k: v for k, v in fields.items() if k != "tensorboard"} | (
                {"logger": "tensorboard"} if fields["tensorboard"] else {})
        valid = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(fields) - valid
        if unknown:
            raise ValueError(f"{source}: unknown fields {sorted(unknown)}; valid fields are "
                             f"{sorted(valid)} (was it written by a newer est_analysis?)")
        return TrainConfig(**fields)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader (no `!!python` tags) that refuses a key given twice in one mapping,
    which plain YAML silently resolves to the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (remove one)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _boundaries(value: Any) -> list[float] | None:
    """`stages` as a list of numbers, from a list or its text (0.2,0.5,1); `Schedule` checks
    their order and range."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_boundaries(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"stages={value!r} must be a list of stage boundaries, e.g. [0.2, 0.5, 1]")
    return [FINITE.parse(b, f"stages[{i}]") for i, b in enumerate(value)]


def _rates(value: Any) -> list[list[float]] | None:
    """`rates` as (p_H, p_M, p_L) per stage, from lists or their text (`Schedule` checks that
    each is in (0, 1])."""
    if value is None:
        return None
    if isinstance(value, str):
        return [list(t) for t in parse_rates(value)]
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(r, (list, tuple)) and len(r) == 3 for r in value)):
        raise ValueError(f"rates={value!r} must be one [p_H, p_M, p_L] per stage, e.g. "
                         "[[0.5, 0.5, 0.5], [0.5, 0.5, 1], [1, 1, 1]]")
    return [[FINITE.parse(p, f"rates[{i}][{j}]") for j, p in enumerate(r)]
            for i, r in enumerate(value)]
