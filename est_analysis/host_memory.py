"""The memory this process may still take on the host: the machine's available memory, a
cgroup limit or an address-space limit, whichever is least (None where none is known); and a
guard that refuses work whose estimated need exceeds it, with both figures. The device-aware
guard for training and Hessian products is `training.memory`."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def host_available_bytes() -> int | None:
    """What this process may still allocate in host memory (None: unknown)."""
    limits = [_meminfo_available(), _cgroup_available(), _address_space_available()]
    known = [v for v in limits if v is not None]
    return min(known) if known else None


def check_host_memory(need: int, what: str, fix: str) -> None:
    """Refuse `what` when its estimated `need` exceeds the host memory available."""
    available = host_available_bytes()
    if available is not None and need > available:
        raise MemoryError(f"{what} needs about {gib(need)} of memory (estimated) but "
                          f"{gib(available)} is available; {fix}")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_available() -> int | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        status = Path(f"/proc/{os.getpid()}/status").read_text()
        size = next(int(l.split()[1]) * 1024 for l in status.splitlines() if l.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return None
    return soft - size
