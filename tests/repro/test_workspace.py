"""Run directories are recorded relative to the workspace root, also through a symlinked runs
directory, and resolve back to the same run."""

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
