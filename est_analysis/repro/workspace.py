"""Where a reproduction lives on disk: a workspace root holding `paper_repro/runs/` (the runs,
git-ignored), `paper_repro/results/` (one CSV per table) and `figures/`. The `smoke` scale (a
check that the machinery runs, not evidence) keeps all three under `paper_repro/smoke/`,
git-ignored, so that trying it never changes a committed result.

The root is found from the current directory: the nearest directory, itself or above, that
holds `paper_repro/` (a source checkout, also from its `notebooks/`), else the current
directory itself (an installed package used elsewhere). Run directories are recorded in the
results relative to the root, so a workspace can move as a whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


SCRATCH_SCALES = ("smoke",)  # scales whose runs, results and figures are never committed


@dataclass(frozen=True)
class Workspace:
    root: Path
    scale: str | None = None  # a scratch scale puts everything under paper_repro/<scale>/

    @property
    def _base(self) -> Path:
        return self.root / "paper_repro" / (self.scale if self.scale in SCRATCH_SCALES else "")

    @property
    def runs(self) -> Path:
        return self._base / "runs"

    @property
    def results(self) -> Path:
        return self._base / "results"

    @property
    def figures(self) -> Path:
        return self._base / "figures" if self.scale in SCRATCH_SCALES else self.root / "figures"

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


def find_workspace(start: Path | None = None, scale: str | None = None) -> Workspace:
    """The workspace of `start` (default the current directory), for `scale`'s files."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / "paper_repro").is_dir():
            return Workspace(directory, scale)
    return Workspace(start, scale)
