"""`metrics.csv`: one row per training step, flushed as it is written. On resume the rows of
steps after the checkpoint, and any row torn by a crash mid-write, are dropped (atomically) so
that the file matches an uninterrupted run. `--logger` sends the same rows to a tracker too
(`trackers`)."""

from __future__ import annotations

import csv
import errno
import io
from pathlib import Path

from est_analysis.io import atomic_write_text, disk_full
from est_analysis.training.trackers import Tracker

COLUMNS = ("step", "stage", "p_H", "p_M", "p_L", "tokens", "step_flops", "cum_flops", "lr",
           "train_loss", "val_loss", "step_s", "wall_s", "tokens_per_s", "mfu")
# the only columns that differ between identical runs
TIMING_COLUMNS = ("step_s", "wall_s", "tokens_per_s", "mfu")
# the x axes a run's progress is measured along: name -> (column, axis label); `cum_lr` is
# derived when the file is read (`RunDir.read_metrics`): at equal loss EST's stage 3 runs at a
# lower LR than Original, so slopes per unit of LR separate the schedule from the method
X_AXES = {"step": ("step", "step"), "tokens": ("tokens", "tokens seen"),
          "flops": ("cum_flops", "cumulative training FLOPs"),
          "wall": ("wall_s", "training wall time (s)"),
          "cum_lr": ("cum_lr", "cumulative learning rate (sum of per-step LR)")}


class MetricsLog:
    def __init__(self, path: str | Path, keep_steps_before: int = 0,
                 tracker: Tracker | None = None) -> None:
        self.path = Path(path)
        self._tracker = tracker
        kept = []
        if keep_steps_before > 0 and self.path.exists():
            kept = [r for r in _read_rows(self.path) if int(r["step"]) < keep_steps_before]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())
        # the last validation loss of the kept rows: a run resumed at its end reports it
        self.last_val_loss = next((float(r["val_loss"]) for r in reversed(kept) if r["val_loss"]),
                                  float("nan"))
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)

    def write(self, row: dict) -> None:
        try:
            self._writer.writerow(row)
            self._file.flush()
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            raise disk_full(self.path, "a torn last row is dropped when the run is resumed "
                            "(est train --out RUN --resume)") from None
        if self._tracker is not None:
            self._tracker.write(row)

    def close(self) -> None:
        self._file.close()
        if self._tracker is not None:
            self._tracker.close()


OPTIONAL = ("val_loss", "mfu")  # empty where the step was not validated / the peak is unknown


def _read_rows(path: Path) -> list[dict]:
    """The rows of a run's metrics.csv. Only the last row may be damaged (torn by a crash
    mid-write): it is dropped. A damaged row anywhere else (an edit) is a ValueError naming
    its line, since dropping it would silently lose a step."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    if rows and _problem(rows[-1]):
        rows.pop()  # torn
    for line, row in enumerate(rows, 2):
        problem = _problem(row)
        if problem:
            raise ValueError(f"{path}, line {line}: {problem}; the file was edited or damaged. "
                             "Restore it (or fix that row) before resuming")
    return rows


def _problem(row: dict) -> str | None:
    """What is wrong with a metrics row (None when it is whole and every number parses)."""
    if None in row or any(row.get(c) is None for c in COLUMNS):
        return "the row does not have every column"
    for column in COLUMNS:
        value = row[column]
        if value == "" and column in OPTIONAL:
            continue
        try:
            int(value) if column in ("step", "stage") else float(value)
        except ValueError:
            return f"{column}={value!r} is not a number"
    return None
