"""One writer per target file. Every command that writes a database (build, with or without --fresh, merge,
migrate, the Ray driver) holds the target's lock from before it touches any file until it is done; a second
writer is refused at once with the first one's pid and command, and deletes nothing. Standard library only, so
the CLI takes the lock before its heavy imports.

The lock is an flock on `.NAME.lock` beside the target: the kernel drops it when its holder dies (kill -9
included), so a crashed build never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path


class BuildInProgressError(RuntimeError):
    """Another process writes the target (or its work file): starting now would destroy what it is writing."""


class TargetNotWritableError(RuntimeError):
    """The target's folder cannot be written (read-only, no permission, not a folder)."""


# Locks this process holds, by lock path, with their nesting depth: the CLI takes the lock, and the functions it
# calls (run_job, merge, migrate, the Ray driver) take it again for callers that use them as a library.
_held: dict[str, int] = {}


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def holder_description(command: str | None = None) -> str:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"pid {os.getpid()}, `{command or command_line()}`, since {started}"


def command_line() -> str:
    """This process's command as it was typed (`python -m precompute ...` rather than the path of __main__.py)."""
    program = sys.argv[0] if sys.argv else "python"
    if program.endswith(os.path.join("precompute", "__main__.py")):
        program = "python -m precompute"
    return " ".join([program, *sys.argv[1:]])


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "a process that has not said which yet"
    except OSError:
        return "another process"


def _open_locked(path: Path, target: Path) -> int:
    """A descriptor holding the exclusive lock on `path` (the file as it is on disk now), or an error."""
    for _ in range(5):  # a holder may unlink the file between our open and our flock: retry on the new file
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise TargetNotWritableError(f"cannot write in {path.parent}: {error.strerror}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            os.close(fd)
            raise BuildInProgressError(f"{target} is being written by another process "
                                       f"({holder}): wait for it to finish or stop it; nothing was changed") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)
    raise BuildInProgressError(f"could not take the lock {path}: other writers keep replacing it")


@contextmanager
def writer_lock(target: Path, command: str | None = None):
    """Holds the target's writer lock for the block (re-entrant within a process)."""
    path = lock_path(Path(os.path.abspath(target)))
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TargetNotWritableError(f"cannot create the folder {path.parent}: {error.strerror}") from error
    fd = _open_locked(path, target)
    _held[key] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, holder_description(command).encode())
        yield
    finally:
        del _held[key]
        try:
            path.unlink(missing_ok=True)  # while still locked: a waiting opener retries on the new file
        finally:
            os.close(fd)


def holds_lock(target: Path) -> bool:
    return str(lock_path(Path(os.path.abspath(target)))) in _held
