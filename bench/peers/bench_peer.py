"""Runs a peer driver (bench/peers/run_*.py) inside its own venv from a bench script in the project venv,
and reads back its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS = Path(__file__).resolve().parent
REPO = PEERS.parent.parent


def peer_python(name: str) -> Path:
    python = PEERS / f".venv-{name}" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `bash bench/peers/setup.sh {name}` first")
    return python


def run_peer(name: str, script: str, args: list[str], threads: int) -> dict:
    """`bench/peers/<script> args...` in bench/peers/.venv-<name> with `threads` threads (its output streams
    through); returns its JSON result, plus `wall_seconds` (the whole subprocess, model loading included)."""
    with tempfile.TemporaryDirectory(prefix=f"peer-{name}-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        env.pop("PYTHONPATH", None)
        command = [str(peer_python(name)), str(PEERS / script), *args, "--threads", str(threads), "--out", str(out)]
        print(f"\n$ {' '.join(command)}", flush=True)
        start = time.perf_counter()
        completed = subprocess.run(command, cwd=REPO, env=env, stdout=sys.stderr)
        wall = time.perf_counter() - start
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"peer {name} failed (exit code {completed.returncode})")
        result = json.loads(out.read_text())
    result["wall_seconds"] = wall
    return result
