"""--threads N on a bench's command line also caps numpy's and OpenMP's threads: they read these variables
when numpy/torch are first imported, so a bench calls this before importing them."""

from __future__ import annotations

import os
import sys


def cap_threads_from_argv() -> None:
    for i, arg in enumerate(sys.argv):
        value = sys.argv[i + 1] if arg == "--threads" and i + 1 < len(sys.argv) else (
            arg.split("=", 1)[1] if arg.startswith("--threads=") else None)
        if value:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                os.environ[name] = value
