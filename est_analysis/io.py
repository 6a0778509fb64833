"""Atomic file writes (readers see the old file or the complete new one, never a half-written
one) and file locks between processes."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def check_writable_dir(path: str | Path) -> None:
    """Fail early, before any work and without creating anything, if `path` cannot become a
    writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output path {path} exists and is not a directory; choose "
                                 "another --out")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create {path}: {existing} is a file; choose another --out")
    try:  # a real probe: permission bits say little to root or on special file systems
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".est-write-probe-"))
    except OSError as err:
        raise PermissionError(f"cannot write to {existing} (needed for {path}): {err.strerror}; "
                              "choose a writable --out") from None


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive OS lock on the file `path` (created if missing), released when the
    block ends or the process dies; a second process waits for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LockHeld(OSError):
    """Another live process holds the lock (it names itself in the lock file)."""


@contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive OS lock on `path` without waiting: when another process holds it,
    raise `LockHeld` naming that process (its PID, command and start time, which it wrote into
    the file). The OS releases the lock when its holder dies, so a lock file left by a dead
    process is simply taken over."""
    path = Path(path)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockHeld(f"{what} is in use by {holder}: wait for it to finish (or stop it), "
                           "or choose another directory") from None
        handle.seek(0)
        handle.truncate()
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        handle.write(f"process {os.getpid()} ({command!r}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
