"""Named crash points for the crash-safety tests: a build started with PRECOMPUTE_CRASH_AT=<point>
kills itself with SIGKILL (no cleanup, no exception handlers) when it reaches that point, as a
power cut or an OOM kill would."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "PRECOMPUTE_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


DISK_FULL_ENV = "PRECOMPUTE_DISK_FULL_AT"


def disk_full_point(name: str) -> None:
    """For the disk-full tests where no small filesystem can be mounted: fail as a full disk would (ENOSPC)."""
    if os.environ.get(DISK_FULL_ENV) == name:
        import errno

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)


PAUSE_ENV = "PRECOMPUTE_PAUSE_AT"  # <point>:<file>: at that point, say so on stdout and wait until <file> exists


def pause_point(name: str, timeout: float = 300.0) -> None:
    """For the race tests: hold a running build at a known point (lock taken, work file open) until the test lets
    it go on, so a second command can be started against it deterministically."""
    point, _, release = os.environ.get(PAUSE_ENV, "").partition(":")
    if point != name or not release:
        return
    import time
    from pathlib import Path

    print(f"paused at {name}", flush=True)
    deadline = time.monotonic() + timeout
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
