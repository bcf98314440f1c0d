"""`pip install -e .` (scripts/setup.sh runs it) gives the `absorption-explorer` command: `serve` brings the explorer
up on a database, and the precompute's commands run through it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def command() -> str:
    found = shutil.which("absorption-explorer", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("EXPLORER_CI"):
            pytest.fail("absorption-explorer is not installed: scripts/setup.sh runs `pip install -e .`")
        pytest.skip("absorption-explorer is not installed here (`pip install --no-deps -e .`)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_runs_the_precompute_commands():
    done = subprocess.run([command(), "build", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--discard-work" in done.stdout
    bad = subprocess.run([command(), "migrate", "--db", "/nonexistent/x.duckdb"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: --db /nonexistent/x.duckdb: no such file"]


def test_serve_brings_the_explorer_up_on_a_database(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen([command(), "serve", "--db", str(REPO / "assets" / "demo.duckdb"), "--server.port",
                               str(port), "--server.address", "127.0.0.1"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200, "the server did not answer its health check"
    finally:
        server.terminate()
        server.wait(timeout=30)
