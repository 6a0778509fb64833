"""Where a reproduction lives on disk: a workspace root holding `paper_repro/runs/` (the runs,
git-ignored), `paper_repro/results/` (one CSV per table) and `figures/`.

The root is found from the current directory: the nearest directory, itself or above, that
holds `paper_repro/` (a source checkout, also from its `notebooks/`), else the current
directory itself (an installed package used elsewhere). Run directories are recorded in the
results relative to the root, so a workspace can move as a whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "paper_repro" / "runs"

    @property
    def results(self) -> Path:
        return self.root / "paper_repro" / "results"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def recorded(self, path: Path) -> str:
        """How a results CSV names `path`: relative to the root when it lies inside it. Symlinks
        are kept (abspath, not resolve): runs under a `paper_repro/runs` that links to a larger
        disk are still recorded relative to the root."""
        path = Path(os.path.abspath(path))
        return str(path.relative_to(self.root) if path.is_relative_to(self.root) else path)

    def resolve(self, recorded: str) -> Path:
        """The path a results CSV names (`recorded`)."""
        path = Path(recorded)
        return path if path.is_absolute() else self.root / path


def find_workspace(start: Path | None = None) -> Workspace:
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / "paper_repro").is_dir():
            return Workspace(directory)
    return Workspace(start)
