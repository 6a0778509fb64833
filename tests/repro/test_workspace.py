"""Run directories are recorded relative to the workspace root, also through a symlinked runs
directory, and resolve back to the same run."""

from pathlib import Path

from est_analysis.repro.workspace import find_workspace


def test_runs_behind_a_symlink_are_recorded_relative_to_the_root(tmp_path):
    root, disk = tmp_path / "checkout", tmp_path / "big_disk"
    (root / "paper_repro").mkdir(parents=True)
    (disk / "regime" / "est" / "seed0").mkdir(parents=True)
    (root / "paper_repro" / "runs").symlink_to(disk)
    workspace = find_workspace(root)
    run = workspace.runs / "regime" / "est" / "seed0"
    assert workspace.recorded(run) == "paper_repro/runs/regime/est/seed0"
    assert workspace.resolve(workspace.recorded(run)).resolve() == run.resolve()
    outside = tmp_path / "elsewhere" / "seed0"
    assert workspace.recorded(outside) == str(outside)  # outside the root: absolute


def test_smoke_results_never_touch_the_committed_ones(tmp_path, monkeypatch):
    """`est repro ... --scale smoke` in a checkout writes its CSVs (and runs, figures) under the
    git-ignored paper_repro/smoke/, so trying the machinery leaves every committed file as it
    was; the other scales keep paper_repro/results/ and figures/."""
    from est_analysis.cli.main import main

    (tmp_path / "paper_repro" / "results").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["repro", "table4", "--scale", "smoke", "--no-progress"]) == 0
    assert (tmp_path / "paper_repro" / "smoke" / "results" / "table4.csv").exists()
    assert not any((tmp_path / "paper_repro" / "results").iterdir())
    smoke, regime = find_workspace(scale="smoke"), find_workspace(scale="regime")
    assert smoke.runs == tmp_path / "paper_repro" / "smoke" / "runs"
    assert smoke.figures == tmp_path / "paper_repro" / "smoke" / "figures"
    assert regime.results == tmp_path / "paper_repro" / "results" and regime.figures == tmp_path / "figures"
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    assert "paper_repro/smoke/" in ignored
