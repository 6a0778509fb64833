"""The `est` command: a table of subcommands, one module each, and one error policy (a clear
`est CMD: error: ...` line and exit status 2 for bad input, never a traceback)."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# name -> the module (in est_analysis.cli) that adds its parser (its `add_parser`) and runs it;
# only the named command's module is imported, so `est data ...` does not load the whole toolkit
COMMANDS = {"quickstart": "quickstart", "train": "train", "data": "data", "compare": "compare",
            "cost": "cost", "hessian": "hessian", "diagnose": "diagnose", "export": "export",
            "eval": "downstream", "landscape": "landscape", "plot": "plot", "repro": "repro",
            "list": "listing"}

RESUME = {"train": "rerun with --resume to continue",  # what to do after Ctrl-C
          "repro": "run the same command again: finished runs are reused, the others resume"}

EXAMPLES = """examples:
  est quickstart                                # the main job: EST vs a compute-matched Original
  est compare                                   # Original vs EST at cpu scale, a few minutes
  est train --preset est-gpt2 --scale smoke --out runs/smoke
  est train --preset est-tinyllama --scale cpu --method est --out runs/llama --seed 1
  est train --out runs/smoke --resume           # continue an interrupted run exactly
  est data prepare CORPUS --tokenizer gpt2.tiktoken --out data/c && est train --data data/c
  est cost --preset est-gpt2 --model gpt2-124m  # FLOPs saving of a schedule (26.7 %)
  est hessian trace runs/smoke --json           # Tr(H) with a 95 % CI
  est list                                      # presets, models and scales
Every command that analyses a trained run takes it as a positional RUN: a run directory, its
checkpoint.pt or one of its snapshots/step_*.pt, or a local HF GPT-2/Llama model directory.
"""


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line, as every other error is (`--help` shows the usage); the
    subcommands' parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of the one `argv` names."""
    parser = OneLineErrors(
        prog="est", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Evolving Subnetwork Training (Li et al., ICML 2024): train GPT-2/Llama on "
                    "random subnetworks that grow stage by stage, compare with full training, "
                    "and measure why it works.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = next((a for a in argv or () if not a.startswith("-")), None)
    for name in [named] if named in COMMANDS else COMMANDS:
        importlib.import_module(f"est_analysis.cli.{COMMANDS[name]}").add_parser(sub)
    return parser


def _errors() -> tuple[type[Exception], ...]:
    """The errors that are bad input, a fault or a missing optional dependency, named in one
    line: the training package's own where it was imported (it cannot have raised them
    otherwise)."""
    errors: tuple[type[Exception], ...] = (ValueError, OSError, MemoryError, ImportError)
    if "est_analysis.training" in sys.modules:
        from est_analysis.training import CheckpointError, RunDirError, TrainingError
        errors += (TrainingError, CheckpointError, RunDirError)
    return errors


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"est: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed by argparse
        return int(exit_.code or 0)
    args.argv = argv
    formatwarning, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        args.func(args)
    except Exception as err:
        if not isinstance(err, _errors()):
            raise
        print(f"est {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = RESUME.get(args.command)
        print(f"est {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
    return 0
