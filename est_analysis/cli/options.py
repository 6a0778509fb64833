"""Options shared by the subcommands, each spelled one way everywhere:

- training runs: one flag per `TrainConfig` field, generated from the field's metadata (its
  help, choices and parser), plus `--config FILE.yaml`; adding a field adds the flag;
- runs to analyse: positional `RUN` arguments, each a run directory, its checkpoint.pt or a
  snapshot file;
- fixed batches of a run's data (`--data`, `--batches`, ...) for the analysis commands;
- positive integers checked by argparse, with the option's name in the message.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from est_analysis.domains import NONNEGATIVE_INT, POSITIVE_INT
from est_analysis.loss import Batch
from est_analysis.training import TrainConfig, TrainedRun, load_run
from est_analysis.training.memory import check_memory, hvp_bytes


positive_int = POSITIVE_INT.argtype()  # argparse type: an integer >= 1


def option_pair(text: str) -> tuple[str, Any]:
    """argparse type: NAME=VALUE, the value read as a YAML scalar (0.5, false, first,last)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. theta=0.5")
    return name.strip(), yaml.safe_load(value) if value.strip() else None


def _field_type(field: dataclasses.Field, flag: str) -> Any:
    """The argparse type of a field: its `parse` metadata or its domain's parser (the same as
    YAML's), else str/bool from its hint."""
    if "parse" in field.metadata:
        return field.metadata["parse"]
    if "domain" in field.metadata and field.metadata["domain"].kind is not bool:
        return field.metadata["domain"].argtype()
    hint = typing.get_type_hints(TrainConfig)[field.name]
    return next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))


def add_train_config_options(parser: argparse.ArgumentParser) -> None:
    """`--config` and one flag per `TrainConfig` field (None: the YAML's or the field's value)."""
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields; "
                        "command-line options override it")
    group = parser.add_argument_group("run settings (TrainConfig fields; unset ones come from "
                                      "--config, the scale's recipe, or the default shown)")
    for field in dataclasses.fields(TrainConfig):
        meta = field.metadata
        default = "" if field.default is None else f" (default {field.default})"
        flag = meta.get("flag", "--" + field.name.replace("_", "-"))
        if meta.get("repeat"):
            group.add_argument(flag, dest=field.name, action="append", type=option_pair,
                               metavar="NAME=VALUE", help=meta["help"])
        elif _field_type(field, flag) is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=None, help=meta["help"] + default)
        else:
            group.add_argument(flag, dest=field.name, type=_field_type(field, flag),
                               choices=meta.get("choices"), metavar=meta.get("metavar"),
                               help=meta["help"] + default)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config the options describe: --config's fields, then the flags given."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if "method_options" in overrides:
        overrides["method_options"] = dict(overrides["method_options"])
    if args.config:
        return TrainConfig.from_yaml(args.config, **overrides)
    return TrainConfig(**overrides)


def add_run_argument(parser: argparse.ArgumentParser, nargs: str | None = None,
                     help: str = "run directory, its checkpoint.pt or a snapshot file, or a "
                                 "local HF model directory (GPT-2 / Llama)") -> None:
    """The positional RUN argument(s) of the commands that analyse trained runs."""
    parser.add_argument("runs" if nargs else "run", nargs=nargs, type=Path,
                        metavar="RUN", help=help)


def add_batch_options(parser: argparse.ArgumentParser, batches: int = 2,
                      data: str = "train") -> None:
    """Which fixed batches of the run's data an analysis averages over, and where it runs."""
    parser.add_argument("--data", default=data, help="'train' or 'val' split of the run's corpus, "
                        "or another corpus (built-in name or path) under its tokenizer "
                        "(default %(default)s)")
    parser.add_argument("--batches", type=positive_int, default=batches,
                        help="fixed batches averaged (default %(default)s)")
    parser.add_argument("--batch-size", type=positive_int,
                        help="sequences per batch (default: the run's)")
    parser.add_argument("--seq-len", type=positive_int,
                        help="tokens per sequence (default: the run's)")
    parser.add_argument("--seed", type=NONNEGATIVE_INT.argtype(), default=0,
                        help="seed of the random draws (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_and_batches(args: argparse.Namespace, path: Path | None = None
                    ) -> tuple[TrainedRun, list[Batch]]:
    """The run at `path` (default the RUN argument) and its fixed batches per the options."""
    run = load_run(path or args.run, args.device)
    batches = run.batches(args.data, args.batches, args.batch_size, args.seq_len)
    rows, length = batches[0][0].shape
    check_memory(hvp_bytes(run.model.config, rows, length), next(run.model.parameters()).device,
                 f"a Hessian-vector product on batches of {rows} x {length} tokens",
                 "lower --batch-size (and raise --batches to keep the tokens averaged over)")
    return run, batches
