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
