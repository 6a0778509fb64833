"""Crash safety by construction (issue #32): checkpoints carry a digest checked on every load
and a resume falls back to the checkpoint kept before a damaged or missing one; a failed start
removes exactly what it created; lock and partial files are never written through a link."""

import os

import pandas as pd
import pytest
import torch

import est_analysis.training.checkpoint as checkpoint_module
import est_analysis.training.loop as loop
from est_analysis.cli.main import main
from est_analysis.io import exclusive_lock, open_no_follow
from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from est_analysis.training.metrics import TIMING_COLUMNS
from tests.helpers import interrupted_at

TRAIN = ["train", "--scale", "smoke", "--no-progress"]
CONFIG = TrainConfig(scale="smoke", steps=12, ckpt_every=2, eval_every=4)


def _metrics(run: RunDir) -> pd.DataFrame:
    return run.read_metrics().drop(columns=list(TIMING_COLUMNS))


def _stopped_at(tmp_path, monkeypatch, step: int) -> RunDir:
    """CONFIG's run, interrupted just before `step` (checkpoints at every even step before)."""
    interrupted_at(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    return RunDir(tmp_path / "cut")


def _flip_bytes_of(path, tensor: torch.Tensor, count: int = 64) -> None:
    """Flip `count` bytes in the middle of `tensor`'s data where `path` stores it."""
    data, raw = bytearray(path.read_bytes()), tensor.numpy().tobytes()
    at = data.find(raw)
    assert at >= 0 and len(raw) > count
    middle = at + (len(raw) - count) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_a_checkpoint_edited_after_it_was_written_fails_its_digest(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    weight = torch.arange(200, dtype=torch.float32)
    save_checkpoint(path, {"model": {"w": weight}, "step": 1, "config": {}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], weight)
    _flip_bytes_of(path, weight)
    with pytest.raises(CheckpointError, match=f"{path} does not match its digest"):
        load_checkpoint(path)


def test_every_command_refuses_a_damaged_checkpoint_naming_it(tmp_path, monkeypatch, capsys):
    run = RunDir(tmp_path / "run")
    assert main([*TRAIN, "--steps", "6", "--out", str(run.path)]) == 0
    state = load_checkpoint(run.checkpoint)
    _flip_bytes_of(run.checkpoint, state["model"]["blocks.0.mlp.up.weight"])
    capsys.readouterr()
    assert main(["hessian", "trace", str(run.path), "--probes", "6", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match its digest" in err[0] and str(run.checkpoint) in err[0]


def test_a_resume_falls_back_to_the_kept_checkpoint_when_the_newest_is_damaged(tmp_path, monkeypatch, capsys):
    whole = RunDir(train(CONFIG, tmp_path / "whole", progress=False))
    run = _stopped_at(tmp_path, monkeypatch, 9)  # checkpoint.pt after step 8, the kept one after 6
    assert load_checkpoint(run.previous_checkpoint)["step"] == 6
    _flip_bytes_of(run.checkpoint, load_checkpoint(run.checkpoint)["model"]["blocks.0.mlp.up.weight"])
    assert main(["train", "--out", str(run.path), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "is damaged (kept as checkpoint.damaged.pt): resuming from the checkpoint before it (step 6)" in err
    assert run.damaged_checkpoint.exists()
    pd.testing.assert_frame_equal(_metrics(run), _metrics(whole))


def test_a_run_left_without_checkpoint_pt_resumes_from_the_kept_one(tmp_path, monkeypatch):
    # what the rotation before #32 left when killed between its rename and its write
    whole = RunDir(train(CONFIG, tmp_path / "whole", progress=False))
    run = _stopped_at(tmp_path, monkeypatch, 9)
    run.checkpoint.unlink()
    assert run.can_resume
    train(CONFIG, run.path, resume=True, progress=False)
    pd.testing.assert_frame_equal(_metrics(run), _metrics(whole))


def test_a_failed_start_keeps_a_run_another_process_finished_in_the_same_parent(tmp_path, monkeypatch):
    parent = tmp_path / "X"
    real = loop._start

    def other_process_finishes_r2_then_this_start_fails(cfg, out, *args):
        if out.path.name == "r2":  # the other process's own start
            return real(cfg, out, *args)
        assert main([*TRAIN, "--steps", "8", "--out", str(parent / "r2")]) == 0
        raise ValueError("refused by the memory guard")
    monkeypatch.setattr(loop, "_start", other_process_finishes_r2_then_this_start_fails)
    with pytest.raises(ValueError, match="memory guard"):
        train(TrainConfig(scale="smoke", steps=8), parent / "r1", progress=False)
    monkeypatch.setattr(loop, "_start", real)
    assert not (parent / "r1").exists()
    assert RunDir(parent / "r2").finished and sorted(p.name for p in parent.iterdir()) == ["r2"]


def test_a_directory_holding_what_a_new_run_would_overwrite_is_refused_untouched(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "snapshots").mkdir(parents=True)
    (mine / "tensorboard").mkdir()
    (mine / "snapshots" / "keep.txt").write_text("mine")
    config = mine / "config.yaml"
    config.write_text("scale: smoke\nsteps: 8\n")
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    assert main(["train", "--config", str(config), "--out", str(mine), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already holds config.yaml, snapshots, tensorboard, which a new run would overwrite" in err
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "snapshots", "tensorboard"]


@pytest.mark.parametrize("lock", [".lock", ".prepare.lock"])
def test_lock_files_never_write_through_a_symbolic_link(tmp_path, lock):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / lock).symlink_to(victim)
    with pytest.raises(OSError, match="is a symbolic link: est does not write through links"):
        with exclusive_lock(tmp_path / "d" / lock, "x"):
            pass
    with pytest.raises(OSError, match="symbolic link"):
        open_no_follow(tmp_path / "d" / lock, "ab")
    assert victim.read_text() == "precious"


def test_resume_through_a_linked_lock_is_refused_and_the_target_kept(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "4", "--out", str(run)]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    assert not (run / ".lock").exists()  # a clean exit leaves no lock file
    (run / ".lock").symlink_to(victim)
    assert main([*TRAIN, "--steps", "6", "--out", str(run), "--resume"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious"


def test_keeping_a_file_already_kept_by_a_link_leaves_no_temporary(tmp_path):
    # a kill after the old checkpoint was kept and before the new one was renamed leaves
    # checkpoint.previous.pt and checkpoint.pt as two links to one file; rename(2) of a link
    # over another link of the same file does nothing, so a naive keep leaves its temporary
    from est_analysis.io import keep_copy
    current, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.previous.pt"
    current.write_bytes(b"step 6")
    os.link(current, previous)
    keep_copy(current, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.previous.pt", "checkpoint.pt"]
    current.unlink()
    current.write_bytes(b"step 8")  # a new file: kept as a link to it
    keep_copy(current, previous)
    assert previous.read_bytes() == b"step 8" and os.path.samefile(current, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.previous.pt", "checkpoint.pt"]


def test_a_full_disk_in_any_atomic_write_is_one_line_naming_the_file(tmp_path):
    import errno

    from est_analysis.io import atomic_write

    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    (tmp_path / "table.csv").write_text("old")
    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "table.csv", full)
    assert str(caught.value).startswith(f"no space left on the device writing {tmp_path / 'table.csv'}")
    assert caught.value.errno == errno.ENOSPC and "[Errno" not in str(caught.value)
    assert (tmp_path / "table.csv").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"model": {"w": torch.ones(3)}, "optimizer": {}, "step": 3, "config": {}}
    save_checkpoint(path, good)

    def crash_mid_write(state, f):
        f.write(b"\x80\x02 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_mid_write)
    with pytest.raises(OSError):
        save_checkpoint(path, {**good, "step": 6})
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left
