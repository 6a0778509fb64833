"""Atomic file writes (readers see the old file or the complete new one, never a half-written
one), files opened without following links, and file locks between processes.

Nothing here writes through a symbolic link: temporary files are created exclusively
(`mkstemp`), renames replace a link itself rather than its target, and files opened for
appending or locking are opened with O_NOFOLLOW."""

from __future__ import annotations

import errno
import hashlib
import json
import fcntl
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    import pandas as pd


class LinkRefused(OSError):
    """A file the toolkit writes is a symbolic link (or not a regular file): it is never
    written through."""


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object],
                 keep_previous: str | Path | None = None) -> Path:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    With `keep_previous`, the file `path` held until now is kept under that name (a hard link,
    or a copy where the file system has none) once the new file is complete and before it
    replaces `path`: at every instant `path` is a complete file, and a crash at any point
    leaves the old one at `path` or the new one at `path` with the old one at `keep_previous`."""
    path = Path(path)
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and is_regular_file(path):
            keep_copy(path, Path(keep_previous))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise disk_full(path) from None
        raise
    return path


class DiskFull(OSError):
    """A full disk (errno ENOSPC), said in one line without the errno prefix."""

    def __str__(self) -> str:
        return self.strerror


def disk_full(path: Path, kept: str = "the file is as it was before") -> DiskFull:
    """The one-line error for a full disk while writing `path`, with the space left."""
    free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
    return DiskFull(errno.ENOSPC, f"no space left on the device writing {path} "
                                  f"({free // 2**20} MiB free): {kept}; free some space and run "
                                  "the same command again")


def make_dirs(path: str | Path) -> Path:
    """`path` as a directory, its missing parents created; an OSError naming the file in the way
    (where a parent is a file) and the fix, instead of a bare errno."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise NotADirectoryError(f"cannot create the directory {path}: {blocker} is a file; "
                                 "choose another output path") from None
    return path


def temporary_prefix(path: Path) -> str:
    """The name prefix of `atomic_write`'s temporary files for `path` (".NAME.")."""
    return f".{path.name}."


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files that a killed `atomic_write` of `path` left beside it (regular
    files named by `temporary_prefix`, never links); call it only while holding the lock of the
    directory, so that no live writer owns them. Returns what was removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f"{temporary_prefix(path)}*.tmp"):
        if is_regular_file(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def is_regular_file(path: str | Path) -> bool:
    """`path` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def keep_copy(path: Path, previous: Path) -> None:
    """Make `previous` a complete copy of the regular file `path` (a hard link where possible),
    atomically: `previous` is its old file or the complete copy at every instant."""
    if is_regular_file(previous) and os.path.samefile(path, previous):
        return  # already a link to it (a kill after the last keep): and rename(2) of one link
        # over another of the same file does nothing, which would leave the temporary behind
    tmp = previous.parent / f"{temporary_prefix(previous)}{secrets.token_hex(6)}.tmp"
    try:
        os.link(path, tmp, follow_symlinks=False)  # never follows: fails if `tmp` exists
    except OSError as err:
        if err.errno == errno.EEXIST:
            raise
        # no hard links on this file system (some network and FUSE ones): copy instead
        with open(path, "rb") as source:
            atomic_write(previous, lambda f: shutil.copyfileobj(source, f))
        return
    try:
        os.replace(tmp, previous)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    """Make the renames in `directory` durable (a power loss after them keeps them)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory; the rename itself is atomic
        pass
    finally:
        os.close(fd)


def open_no_follow(path: str | Path, mode: str = "a") -> IO:
    """Open `path` for appending (created if missing; `mode` "a", "ab" or "a+") without
    following a symbolic link, and only if it is a regular file: `LinkRefused` otherwise,
    naming the file and the fix."""
    path = Path(path)
    flags = {"a": os.O_WRONLY, "ab": os.O_WRONLY, "a+": os.O_RDWR}[mode]
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LinkRefused(f"{path} is a symbolic link: est does not write through links; "
                              "remove the link (or choose another directory) and run again") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(f"{path} is not a regular file: remove it (or choose another "
                          "directory) and run again")
    return os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""}))


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


def _locked(path: Path, mode: str, wait: bool) -> tuple[IO, bool]:
    """`path` opened (`open_no_follow`) and whether this process now holds its flock (False:
    another does, and not `wait`). Lock files are removed by their holder (`_unlock`), so
    the lock is taken again when the file it got is no longer the one at `path`."""
    while True:
        handle = open_no_follow(path, mode)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return handle, False  # held by another process: the caller reads who
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.lstat(path)):
                return handle, True
        except FileNotFoundError:
            pass
        handle.close()  # its holder removed it as we waited: lock the file now at `path`


def _unlock(path: Path, handle: IO) -> None:
    """Remove the lock file while it is still held and still ours, then release it: a lock
    leaves nothing behind, and a process waiting on the removed file retries (`_locked`)."""
    try:
        if os.path.samestat(os.fstat(handle.fileno()), os.lstat(path)):
            os.unlink(path)
    except FileNotFoundError:
        pass
    finally:
        handle.close()


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive OS lock on the file `path` (created if missing, removed when the
    block ends), released when the block ends or the process dies; a second process waits."""
    path = Path(path)
    make_dirs(path.parent)
    handle, _ = _locked(path, "a", wait=True)
    try:
        yield
    finally:
        _unlock(path, handle)


class LockHeld(OSError):
    """Another live process holds the lock (it names itself in the lock file)."""


@contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive OS lock on `path` without waiting: when another process holds it,
    raise `LockHeld` naming that process (its PID, command and start time, which it wrote into
    the file). The OS releases the lock when its holder dies, so a lock file left by a dead
    process is simply taken over; a clean exit removes it."""
    path = Path(path)
    handle, held = _locked(path, "a+", wait=False)
    if not held:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeld(f"{what} is in use by {holder}: wait for it to finish (or stop it), "
                       "or choose another directory") from None
    try:
        handle.seek(0)
        handle.truncate()
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        handle.write(f"process {os.getpid()} ({command!r}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        yield
    finally:
        _unlock(path, handle)


class UnreadableFile(ValueError):
    """A file the toolkit reads is not what it should be (its name and the fix are said)."""


def read_json(path: str | Path, fix: str = "restore it, or write it again") -> object:
    """The JSON in `path`; `UnreadableFile` naming the file (and `fix`) when it is not UTF-8
    JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"{path} is not UTF-8 text (byte {err.start}); {fix}") from None
    except json.JSONDecodeError as err:
        raise UnreadableFile(f"{path} is not valid JSON ({err}); {fix}") from None


def read_csv_file(path: str | Path, what: str, **options: object) -> "pd.DataFrame":
    """The CSV at `path` as a DataFrame; `UnreadableFile` naming `what` and the file when it is
    missing, empty or not CSV text."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{what} {path}: no such file")
    try:
        return pd.read_csv(path, **options)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UnreadableFile(f"{what} {path} is not a CSV table ({str(err).strip()})") from None


def file_digest(*paths: str | Path) -> str:
    """BLAKE2b of the files' bytes, in order, read in 1 MiB chunks (memory does not grow with
    their size)."""
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def digest_file(path: str | Path) -> Path:
    """Where the digest of the cache file `path` is kept (`<name>.digest` beside it)."""
    path = Path(path)
    return path.with_name(path.name + ".digest")


def record_digest(path: str | Path) -> None:
    """Write the digest of `path` beside it (after `path` itself is complete)."""
    atomic_write_text(digest_file(path), file_digest(path) + "\n")


def check_digest(path: str | Path, fix: str) -> None:
    """Refuse `path` when its bytes no longer match the digest recorded when it was written;
    a file written before digests were kept gets its digest recorded now."""
    recorded = digest_file(path)
    if not recorded.exists():
        record_digest(path)
        return
    if file_digest(path) != recorded.read_text().strip():
        raise UnreadableFile(f"{path} does not match the digest recorded when it was written "
                             f"({recorded.name}): its bytes changed; {fix}")
