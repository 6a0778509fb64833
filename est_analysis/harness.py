"""`est eval`: downstream scores with lm-evaluation-harness on tasks from local files (its
built-in tasks fetch their data from a hub, which cannot work offline).

Two task kinds are written for the harness from plain JSONL files, in its own local-task
format (`dataset_path: json`):
- `last-word` (LAMBADA format, as `lambada_openai`): records {"text": ...}; the model is scored
  on the last space-separated word given the rest (accuracy: greedy match; perplexity);
- `choice` (multiple choice): records {"query": ..., "choices": [...], "gold": index};
  accuracy by summed log-likelihood of each choice, and length-normalised (`acc_norm`).
Task YAMLs of the harness's own format are used as they are (`--include DIR`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pandas as pd
import yaml

TASK_KINDS = ("last-word", "choice")
FIELDS = {"last-word": {"text"}, "choice": {"query", "choices", "gold"}}


def task_config(name: str, kind: str, data_file: Path) -> dict:
    """The harness's YAML config of a local task of `kind` over the JSONL `data_file`."""
    common = {"task": name, "dataset_path": "json", "test_split": "test",
              "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
              "metadata": {"version": 1.0}}
    if kind == "last-word":
        return common | {"output_type": "loglikelihood",
                         "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}",
                         "doc_to_target": "{{' '+text.split(' ')[-1]}}",
                         "metric_list": [{"metric": "perplexity", "aggregation": "perplexity",
                                          "higher_is_better": False},
                                         {"metric": "acc", "aggregation": "mean",
                                          "higher_is_better": True}]}
    # each choice carries its own leading space, as in the text (" queen"): no delimiter added
    return common | {"output_type": "multiple_choice", "doc_to_text": "{{query}}",
                     "doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}",
                     "target_delimiter": "",
                     "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                                     {"metric": "acc_norm", "aggregation": "mean",
                                      "higher_is_better": True}]}


def parse_task(spec: str) -> tuple[str, str, Path]:
    """`NAME=KIND:FILE` (e.g. `mylambada=last-word:lambada.jsonl`), checked against the file."""
    try:
        name, rest = spec.split("=", 1)
        kind, file = rest.split(":", 1)
    except ValueError:
        raise ValueError(f"--task {spec!r}: expected NAME=KIND:FILE, e.g. "
                         "lastword=last-word:lambada.jsonl or quiz=choice:quiz.jsonl") from None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"--task {spec!r}: the task name {name!r} must be a plain identifier "
                         "(letters, digits and _, not starting with a digit), e.g. quiz")
    if kind not in TASK_KINDS:
        raise ValueError(f"--task {spec!r}: kind {kind!r} is not one of {TASK_KINDS}")
    path = Path(file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--task {spec!r}: {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--task {spec!r}: {path} is not UTF-8 text (byte {err.start}); give a "
                         "JSON-lines file") from None
    records = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err})") from None
            if not isinstance(record, dict) or not FIELDS[kind] <= set(record):
                raise ValueError(f"{path}:{n}: a {kind} record needs the fields "
                                 f"{sorted(FIELDS[kind])}")
            _check_record(record, kind, f"{path}:{n}")
            records += 1
    if not records:
        raise ValueError(f"--task {spec!r}: {path} holds no records (one JSON object per line)")
    return name, kind, path


def _check_record(record: dict, kind: str, where: str) -> None:
    """The fields' types: text strings, and for `choice` a list of at least two string
    choices with `gold` an index into it."""
    if kind == "last-word":
        if not isinstance(record["text"], str) or len(record["text"].split(" ")) < 2:
            raise ValueError(f"{where}: text={record['text']!r} must be a string of at least "
                             "two words (the last one is the target)")
        return
    choices, gold = record["choices"], record["gold"]
    if not isinstance(record["query"], str):
        raise ValueError(f"{where}: query={record['query']!r} must be a string")
    if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
        raise ValueError(f"{where}: choices={choices!r} must be a list of at least two strings")
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise ValueError(f"{where}: gold={gold!r} must be the index of the right choice, an "
                         f"integer from 0 to {len(choices) - 1}")


def evaluate(model_dir: str | Path, tasks: list[tuple[str, str, Path]],
             include: str | Path | None = None, named: list[str] = (), limit: int | None = None,
             batch_size: int = 8, device: str = "cpu") -> pd.DataFrame:
    """Scores of the HF model directory `model_dir` on the local `tasks` and on the tasks
    `named` from the YAMLs in `include`: one row per (task, metric)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import lm_eval
        import lm_eval.evaluator
    except ImportError as err:
        raise ImportError(f"est eval needs lm-evaluation-harness ({err}): install the eval extra, "
                          "pip install 'est-analysis[eval]' (or -e '.[eval]' in a checkout)") from None
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="est-eval-tasks-") as tmp:
        for name, kind, file in tasks:
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(task_config(name, kind, file)))
        paths = [tmp] + ([str(include)] if include else [])
        manager = TaskManager(include_path=paths, include_defaults=False)
        wanted = [name for name, _, _ in tasks] + list(named)
        unknown = [t for t in wanted if t not in manager.all_tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; --include {include} defines "
                             f"{sorted(set(manager.all_tasks) - {n for n, _, _ in tasks})}")
        # stdout stays clean for --json; the harness records the git hash of the current
        # directory with a bare `git describe`, which prints "fatal: not a git repository"
        # outside a checkout: the hash is not ours to record, so it is skipped
        with contextlib.redirect_stdout(sys.stderr), \
                mock.patch.object(lm_eval.evaluator, "get_git_commit_hash", lambda: None):
            results = lm_eval.simple_evaluate(
                model="hf", model_args={"pretrained": str(model_dir), "dtype": "float32"},
                tasks=wanted, task_manager=manager, batch_size=batch_size, device=device,
                limit=limit, log_samples=False, bootstrap_iters=1000, random_seed=0)
    rows = []
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            metric, comma, _ = key.partition(",")
            if not comma or metric.endswith("_stderr"):  # "alias", "name", "sample_len"
                continue
            stderr = metrics.get(key.replace(metric, f"{metric}_stderr", 1))
            rows.append({"task": task, "metric": metric, "value": value,
                         "stderr": stderr if isinstance(stderr, float) else None,
                         "samples": results["n-samples"][task]["effective"]})
    return pd.DataFrame(rows)
