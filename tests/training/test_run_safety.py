"""Nothing lost, nothing silently wrong (issue #25): a run directory is locked while it trains,
resume continues only what can be continued exactly, a failed start leaves nothing behind, and
a diverged run keeps a checkpoint that is still good."""

import multiprocessing
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from est_analysis.cli.main import main
from est_analysis.io import exclusive_lock, file_lock
from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.metrics import TIMING_COLUMNS
from tests.helpers import interrupted_at

TRAIN = ["train", "--scale", "smoke", "--no-progress"]


def metrics(run) -> pd.DataFrame:
    return pd.read_csv(RunDir(run).metrics).drop(columns=list(TIMING_COLUMNS))


def test_a_second_process_on_a_training_run_directory_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from est_analysis.io import exclusive_lock\n"
        f"with exclusive_lock({str(run / '.lock')!r}, 'x'):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*TRAIN, "--steps", "5", "--out", str(run)]) == 2
        assert f"run directory {run} is in use by process {holder.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of the second run
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is released by the OS and simply taken over
    assert main([*TRAIN, "--steps", "5", "--out", str(run)]) == 0


def test_the_lock_names_its_holder_and_is_released_on_exit(tmp_path):
    path = tmp_path / ".lock"
    with exclusive_lock(path, "this directory"):
        with pytest.raises(OSError, match=f"this directory is in use by process {os.getpid()}"):
            with exclusive_lock(path, "this directory"):
                pass
    assert not path.exists()  # a clean exit leaves no lock file
    with exclusive_lock(path, "this directory"):  # free again
        pass


def _count_under_lock(path, times):
    for _ in range(times):
        with file_lock(path.with_suffix(".lock")):
            value = int(path.read_text())
            path.write_text(str(value + 1))


def test_locks_that_remove_their_file_still_exclude_each_other(tmp_path):
    # each holder unlinks the lock file on exit; a waiter that got the removed file must lock
    # the new one instead, or two processes would hold "the" lock at once and lose increments
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_count_under_lock, args=(counter, 100)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert int(counter.read_text()) == 400 and not counter.with_suffix(".lock").exists()


def test_resume_without_a_checkpoint_is_an_error_that_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*TRAIN, "--out", str(empty), "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err and not any(empty.iterdir())
    assert main([*TRAIN, "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert not (tmp_path / "none").exists()
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "6", "--out", str(run)]) == 0
    (run / "checkpoint.pt").unlink()
    before = (run / "metrics.csv").read_bytes()
    assert main([*TRAIN, "--steps", "6", "--out", str(run), "--resume"]) == 2
    assert "has no checkpoint.pt" in capsys.readouterr().err
    assert (run / "metrics.csv").read_bytes() == before and not (run / "checkpoint.pt").exists()
    hf = tmp_path / "hf"
    assert main(["export", str(_finished(tmp_path)), "--to", str(hf)]) == 0
    listing = sorted(p.name for p in hf.iterdir())
    assert main([*TRAIN, "--out", str(hf), "--resume"]) == 2
    assert sorted(p.name for p in hf.iterdir()) == listing


def _finished(tmp_path):
    run = tmp_path / "finished"
    if not run.exists():
        assert main([*TRAIN, "--steps", "6", "--out", str(run)]) == 0
    return run


def test_a_torn_metrics_row_is_dropped_on_resume(tmp_path, monkeypatch):
    config = TrainConfig(scale="smoke", steps=20, ckpt_every=10, eval_every=5)
    whole = train(config, tmp_path / "whole", progress=False)
    interrupted_at(monkeypatch, 13)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    with (tmp_path / "cut" / "metrics.csv").open("a") as f:
        f.write("2")  # a row torn by the crash
    train(config, tmp_path / "cut", resume=True, progress=False)
    pd.testing.assert_frame_equal(metrics(tmp_path / "cut"), metrics(whole))


def test_resume_reads_the_runs_own_settings(tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupted_at(monkeypatch, 15)
    assert main([*TRAIN, "--steps", "24", "--ckpt-every", "5", "--seed", "3", "--out", str(run)]) == 130
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0  # no settings
    whole = train(TrainConfig(scale="smoke", steps=24, ckpt_every=5, seed=3), tmp_path / "whole",
                  progress=False)
    pd.testing.assert_frame_equal(metrics(run), metrics(whole))


def test_a_failed_start_leaves_nothing_and_the_same_command_then_works(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    command = [*TRAIN, "--steps", "4", "--seq-len", "100", "--out", str(out)]  # > block size
    assert main(command) == 2
    assert "exceeds the context" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert main([*TRAIN, "--method", "layer-drop", "--method-option", "theta=2", "--out",
                 str(existing)]) == 2  # found once the run's pieces are built
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]
    assert main([*TRAIN, "--steps", "4", "--out", str(out)]) == 0


def test_out_of_memory_at_start_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("est_analysis.training.memory.available_bytes", lambda device: 2**30)
    assert main([*TRAIN, "--batch-size", "800", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "needs about 1.4" in err and "1.00 GiB is available" in err and "--batch-size" in err
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_keeps_its_last_good_checkpoint_and_resumes_at_a_lower_lr(tmp_path, capsys):
    run = tmp_path / "run"
    # LR warms up to 1: the loss explodes at step 6, after the checkpoint written at step 6
    assert main([*TRAIN, "--steps", "40", "--lr", "1", "--warmup-fraction", "0.5",
                 "--ckpt-every", "2", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the run diverged" in err and "(step 5)" in err and "--resume --lr 0.1" in err
    from est_analysis.training.checkpoint import load_checkpoint
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 5  # the one before the bad weights
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.1", "--no-progress"]) == 0
    history = yaml.safe_load((run / "config.yaml").read_text())["config_history"]
    assert history == [{"step": 5, "changed": {"lr": [1.0, 0.1]}}]
    assert not (run / "checkpoint.previous.pt").exists()  # removed once the run finished


def test_only_the_advised_settings_may_change_on_resume(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    interrupted_at(monkeypatch, 7)
    assert main([*TRAIN, "--steps", "12", "--ckpt-every", "5", "--out", str(run)]) == 130
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume", "--batch-size", "4"]) == 2
    assert "batch_size: checkpoint 8 vs now 4" in capsys.readouterr().err


def test_yaml_numbers_and_booleans_are_read_as_such(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1e-3\ncompile: 'no'\nsteps: '4'\nscale: smoke\n")
    config = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert (config.lr, config.compile, config.steps) == (0.001, False, 4)
    for text, message in (("seed: abc\n", "seed='abc' must be an integer >= 0"),
                          ("grad_clip: abc\n", "grad_clip='abc' must be"),
                          ("compile: maybe\n", "compile='maybe' must be true or false"),
                          ("stages: 5\nrates: 1\n", "stages=5 must be a list"),
                          ("stages: [0.5, 1]\nrates: [1, 1]\n", r"rates=\[1, 1\] must be one")):
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(ValueError, match=message):
            TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_the_runner_restarts_its_own_run_killed_before_a_checkpoint(tmp_path, monkeypatch):
    from est_analysis.repro.experiments import RunSpec
    from est_analysis.repro.runner import ensure_trained
    spec = RunSpec("x", TrainConfig(scale="smoke", method="original", steps=8, ckpt_every=100))
    out = RunDir(tmp_path / "r")
    interrupted_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        ensure_trained(spec, out, progress=False)
    monkeypatch.undo()
    assert out.has_run and not out.checkpoint.exists()
    assert ensure_trained(spec, out, progress=False)["steps"] == 8


def test_a_full_disk_while_checkpointing_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import torch

    from est_analysis.training.checkpoint import load_checkpoint
    real, writes = torch.save, {"checkpoints": 0}

    def full_disk_at_the_second_checkpoint(state, f):
        if "optimizer" in state:  # a checkpoint, not a snapshot
            writes["checkpoints"] += 1
            if writes["checkpoints"] == 2:  # what torch's zip writer raises on a short write
                f.write(b"partial")
                raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4224 vs 4112")
        real(state, f)
    monkeypatch.setattr(torch, "save", full_disk_at_the_second_checkpoint)
    run = tmp_path / "b"
    assert main([*TRAIN, "--method", "original", "--steps", "12", "--ckpt-every", "4", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device writing" in err[0]
    assert f"writing {run / 'checkpoint.pt'}" in err[0] and "previous checkpoint is intact" in err[0]
    assert not list(run.rglob(".*.tmp"))  # the partial file is gone
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4  # and the run can resume from it
    monkeypatch.undo()
    assert main([*TRAIN, "--out", str(run), "--resume"]) == 0


def test_the_first_line_says_when_the_embedding_is_most_of_the_model(tmp_path, capsys):
    from est_analysis.models import build_model, get_config
    from est_analysis.training.loop import run_header
    config = TrainConfig(scale="smoke", tokenizer="gpt2.tiktoken").resolved()
    wide = build_model(get_config(config.model).with_vocab(50257))
    params, embedding = wide.num_params(), wide.wte.weight.numel()
    line = run_header(config, wide)
    assert f"{params:,} parameters ({embedding / params:.0%} of them the 50,257-token embedding)" in line
    assert "most of this model is its embedding (the tokenizer gpt2.tiktoken)" in line
    assert "most of this model" not in run_header(config, build_model(get_config(config.model).with_vocab(512)))
    assert main(["train", "--scale", "smoke", "--steps", "5", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err.startswith("est:est-gpt2 on gpt2-smoke, ")  # the run's first line
