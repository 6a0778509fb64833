"""`--logger`: each tracker holds metrics.csv's columns step for step and the run's config,
read back with the tracker's own reader or from its files: TensorBoard's event files (a resumed
run's repeated steps replace the interrupted ones), trackio's SQLite store, W&B's offline run
file (records in W&B's LevelDB-style log, each a protobuf `Record`)."""

import json
import os
import sqlite3
import struct
import subprocess
import sys

import pytest

import est_analysis.training.loop as loop
from est_analysis.training import RunDir, TrainConfig, train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

COLUMNS = ("train_loss", "lr", "cum_flops", "tokens", "stage", "p_H", "p_M", "p_L", "wall_s")


def _scalars(run: RunDir, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars(tag)
    assert len({e.step for e in scalars}) == len(scalars)  # no step written twice
    return {e.step: e.value for e in scalars}


def test_event_file_holds_the_metrics_and_resume_replaces_repeated_steps(tmp_path, monkeypatch):
    config = TrainConfig(scale="smoke", steps=12, eval_every=4, ckpt_every=4, logger="tensorboard")
    reference = RunDir(train(config, tmp_path / "reference", progress=False))
    metrics = reference.read_metrics()
    for column in ("train_loss", "lr", "cum_flops", "p_H", "tokens_per_s"):
        assert _scalars(reference, column) == pytest.approx(dict(zip(metrics["step"], metrics[column])),
                                                            rel=1e-6)
    evaluated = metrics.dropna(subset=["val_loss"])
    assert _scalars(reference, "val_loss") == pytest.approx(
        dict(zip(evaluated["step"], evaluated["val_loss"])), rel=1e-6)

    real, calls = loop.optimizer_step, {"n": 0}

    def crash_at_step_10(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt  # steps 8-9 are logged, the checkpoint is at step 8
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "optimizer_step", crash_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(loop, "optimizer_step", real)
    resumed = RunDir(train(config, tmp_path / "resumed", resume=True, progress=False))
    assert _scalars(resumed, "train_loss") == pytest.approx(_scalars(reference, "train_loss"), rel=1e-6)


def _train_in_a_process(tmp_path, logger: str, env: dict) -> RunDir:
    """A short run with `--logger` in its own process (a tracker reads its settings from the
    environment when it is first imported)."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "est_analysis.cli", "train", "--scale", "smoke",
                           "--steps", "8", "--eval-every", "4", "--logger", logger, "--out", str(run),
                           "--no-progress"], env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return RunDir(run)


def _expected(run: RunDir) -> dict[int, dict]:
    metrics = run.read_metrics()
    return {int(row["step"]): {c: row[c] for c in COLUMNS} for _, row in metrics.iterrows()}


def test_trackio_store_holds_the_metrics_and_the_config(tmp_path):
    pytest.importorskip("trackio")
    store = tmp_path / "trackio"
    run = _train_in_a_process(tmp_path, "trackio", {"TRACKIO_DIR": str(store)})
    database = sqlite3.connect(store / "est.db")
    rows = database.execute("SELECT step, metrics FROM metrics WHERE run_name = 'run'").fetchall()
    logged = {step: json.loads(values) for step, values in rows}
    for step, expected in _expected(run).items():
        assert {c: logged[step][c] for c in COLUMNS} == pytest.approx(expected, rel=1e-9)
    (config,) = database.execute("SELECT config FROM configs WHERE run_name = 'run'").fetchone()
    assert json.loads(config)["logger"] == "trackio" and json.loads(config)["steps"] == 8


def _wandb_records(path):
    """The protobuf records of a W&B run file: a 7-byte header, then 32 KiB blocks of
    chunks (CRC-32C, length, type: full, first, middle, last), as LevelDB's log."""
    from wandb.proto import wandb_internal_pb2
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, at, block = [], b"", 7, 32768
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a header is padding
            at += block - at % block
            continue
        length, kind = struct.unpack("<HB", data[at + 4:at + 7])
        pending += data[at + 7:at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)  # newer W&B writes nested keys


def test_wandb_offline_run_holds_the_metrics_and_the_config(tmp_path):
    pytest.importorskip("wandb")
    run = _train_in_a_process(tmp_path, "wandb", {"WANDB_MODE": "offline"})
    (path,) = (run.path / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(path)
    logged = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {_key(item): json.loads(item.value_json) for item in record.history.item}
            logged[record.history.step.num] = items
    for step, expected in _expected(run).items():
        assert {c: logged[step][c] for c in COLUMNS} == pytest.approx(expected, rel=1e-9)
    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    values = {_key(item): json.loads(item.value_json) for item in run_record.config.update}
    values = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in values.items()}
    assert values["logger"] == "wandb" and values["steps"] == 8
