"""`est landscape` on smoke checkpoints: slices, interpolation and sharpness from the command
line, seeded, with figures and CSV; bad input answered with one line."""

import json

import pandas as pd
import pytest

from est_analysis.cli.main import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("landscape")
    for name, extra in (("est", []), ("original", ["--method", "original", "--preset", "original"]),
                        ("llama", ["--preset", "est-tinyllama"])):
        assert main(["train", "--steps", "12", "--out", str(root / name), "--no-progress", *extra]) == 0
    return root


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_slices_are_seeded_and_centred_on_the_checkpoint(runs, capsys, tmp_path):
    base = ["landscape", "slice", str(runs / "est"), "--points", "3", "--no-progress", "--json"]
    assert main(base) == 0
    line = pd.DataFrame(_json(capsys)["table"])
    assert main(base) == 0
    assert pd.DataFrame(_json(capsys)["table"]).equals(line)
    assert main([*base, "--seed", "1"]) == 0
    assert not pd.DataFrame(_json(capsys)["table"]).equals(line)
    assert main([*base, "--dims", "2", "--plot", str(tmp_path / "plane"), "--csv", str(tmp_path / "p.csv")]) == 0
    plane = pd.DataFrame(_json(capsys)["table"])
    assert len(plane) == 9 and (tmp_path / "plane.png").exists() and (tmp_path / "plane.pdf").exists()
    centre = plane[(plane.alpha == 0) & (plane.beta == 0)]["loss"].item()
    assert centre == pytest.approx(line[line.alpha == 0]["loss"].item(), rel=1e-6)


def test_interpolation_ends_at_both_checkpoints_and_sharpness_grows_with_eps(runs, capsys):
    assert main(["landscape", "interpolate", str(runs / "original"), str(runs / "est"),
                 "--points", "3", "--margin", "0", "--no-progress", "--json"]) == 0
    curve = pd.DataFrame(_json(capsys)["table"])
    assert list(curve["alpha"]) == [0.0, 0.5, 1.0]
    # the default grid (-0.25..1.25 in 21 points, steps of 0.075) misses 0 and 1: added
    assert main(["landscape", "interpolate", str(runs / "original"), str(runs / "est"),
                 "--no-progress", "--json"]) == 0
    curve = pd.DataFrame(_json(capsys)["table"])
    assert {0.0, 1.0} <= set(curve["alpha"]) and len(curve) == 23
    assert main(["landscape", "slice", str(runs / "est"), "--points", "3", "--no-progress",
                 "--json"]) == 0  # alpha 0 of a slice: the run's own weights, the same batch
    own = pd.DataFrame(_json(capsys)["table"]).set_index("alpha")["loss"][0.0]
    assert curve.loc[curve["alpha"] == 1.0, "loss"].item() == pytest.approx(own, rel=1e-6)
    assert main(["landscape", "sharpness", str(runs / "est"), "--eps", "1e-4,1e-3",
                 "--steps", "3", "--no-progress", "--json"]) == 0
    small, large = _json(capsys)["table"]
    assert 0 <= small["sharpness"] <= large["sharpness"]


@pytest.mark.parametrize("args, message", [
    (["slice", "--points", "1"], "--points: '1' must be an integer >= 2"),
    (["slice", "--span", "0"], "--span: '0' must be a finite number > 0"),
    (["sharpness", "--eps", "big"], "--eps 'big'"),
    (["sharpness", "--eps", "0"], "eps=0"),
    (["interpolate", "{llama}"], "different architectures"),
])
def test_bad_input_gets_one_line(runs, capsys, args, message):
    args = [a.format(llama=runs / "llama") for a in args]
    assert main(["landscape", args[0], str(runs / "est"), "--no-progress", *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("est landscape") and err.count("\n") == 1
