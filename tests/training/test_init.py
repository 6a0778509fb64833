"""`est train --init SOURCE`: a run starts from the weights of an est run or a local HF
directory (its first validation loss is the source's last), and a source of another
architecture, tokenizer or a growing method is refused with what to pass instead."""

import pandas as pd
import pytest
import yaml

from est_analysis.cli.main import main
from est_analysis.training import TrainConfig, train


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A smoke run of 8 steps whose last step is evaluated, and its HF export."""
    root = tmp_path_factory.mktemp("init")
    run = train(TrainConfig(scale="smoke", steps=8, eval_every=8), root / "run", progress=False)
    assert main(["export", str(run), "--to", str(root / "hf")]) == 0
    return run, root / "hf"


def _first_and_last_val(run) -> tuple[float, float]:
    val = pd.read_csv(run / "metrics.csv").dropna(subset=["val_loss"])
    return float(val["val_loss"].iloc[0]), float(val["val_loss"].iloc[-1])


@pytest.mark.parametrize("kind", ["run", "hf"])
def test_a_run_starts_from_the_sources_weights(kind, source, tmp_path):
    run, hf = source
    out = tmp_path / "continued"
    # a learning rate too small to move the weights: step 0's evaluation is the start's model
    assert main(["train", "--scale", "smoke", "--steps", "4", "--eval-every", "2", "--lr", "1e-12",
                 "--init", str(run if kind == "run" else hf), "--out", str(out), "--no-progress"]) == 0
    first, _ = _first_and_last_val(out)
    _, source_last = _first_and_last_val(run)
    assert first == pytest.approx(source_last, abs=1e-5)
    fresh = train(TrainConfig(scale="smoke", steps=4, eval_every=2, lr=1e-12), tmp_path / "fresh",
                  progress=False)
    assert _first_and_last_val(fresh)[0] > first + 0.1  # a random start is far worse
    used = yaml.safe_load((out / "config.yaml").read_text())["init_used"]
    assert used["step"] == 8 and used["source"].endswith(kind)
    assert main(["train", "--out", str(out), "--resume"]) == 0  # resumes without re-initialising


def test_a_source_of_another_architecture_is_refused_with_the_model_to_pass(source, tmp_path, capsys):
    run, _ = source
    assert main(["train", "--scale", "smoke", "--model", "gpt2-regime", "--steps", "8",
                 "--init", str(run), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "its model is not this run's" in err and "pass --model gpt2-smoke" in err, err
    assert not (tmp_path / "x").exists()


def test_a_source_with_another_tokenizer_is_refused(source, sentencepiece_model, tmp_path, capsys):
    run, _ = source
    assert main(["train", "--scale", "smoke", "--steps", "8", "--tokenizer", str(sentencepiece_model),
                 "--init", str(run), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--init" in capsys.readouterr().err


def test_a_method_that_grows_its_model_is_refused(source, tmp_path, capsys):
    run, _ = source
    assert main(["train", "--scale", "smoke", "--steps", "4", "--method", "staged", "--init",
                 str(run), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "trains the full model from the first step" in capsys.readouterr().err
