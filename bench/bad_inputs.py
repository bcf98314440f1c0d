"""How each bad input to a writer command is reported, as a real command: `python -m precompute ...` run once per
case of tests/precompute/bad_inputs.py (the issue's list), with its exit status, its stderr line and the seconds
until it exited. Also checks what the test checks (exit 2, one line, every file unchanged).

    python bench/bad_inputs.py            # markdown table on stdout, the machine's load first
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.precompute import bad_inputs as bad  # noqa: E402


def run_case(root: Path, case: bad.BadInput) -> tuple[str, float, str]:
    folder = bad.case_folder(root, case)
    with bad.mounted(bad.mount_point(folder, case), case.mount) as available:
        if not available:
            return "skipped (no mount: needs root)", 0.0, ""
        argv = case.make(folder)
        before = bad.snapshot(folder)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "precompute", *argv], cwd=REPO, env=bad.environment(),
                              capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - start
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        problems = []
        if done.returncode != 2:
            problems.append(f"exit {done.returncode}")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines")
        if bad.snapshot(folder) != before:
            problems.append("files changed")
        message = lines[-1] if lines else ""
        return message.replace(str(folder), "ROOT"), seconds, "; ".join(problems)


def second_writer(root: Path) -> list[tuple[str, str, float]]:
    """A build held at its pause point (lock taken, work file open), then each other writer against its target:
    (command, message, seconds until it exited)."""
    from precompute.util.faults import PAUSE_ENV

    bad.explorer_database(bad.target(root))
    release = root / "go-on"
    env = {**bad.environment(), PAUSE_ENV: f"work-file-open:{release}"}
    first = subprocess.Popen([sys.executable, "-m", "precompute", *bad.build(root, sae=f"first={bad.TOY_SAE}")],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in first.stdout:
        if line.startswith("paused at"):
            break
    source = bad.explorer_database(root / "source.duckdb")
    writers = {"build --fresh": bad.build(root, "--fresh", sae=f"second={bad.TOY_SAE}"),
               "build": bad.build(root, sae=f"second={bad.TOY_SAE}"),
               "merge": ["merge", "--db", str(bad.target(root)), "--from", str(source)],
               "migrate": ["migrate", "--db", str(bad.target(root))]}
    rows = []
    try:
        for name, argv in writers.items():
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "precompute", *argv], cwd=REPO, env=bad.environment(),
                                  capture_output=True, text=True, timeout=600)
            rows.append((name, done.stderr.strip().replace(str(root), "ROOT"), time.perf_counter() - start))
    finally:
        release.touch()
        first.communicate(timeout=600)
    return rows


def main() -> None:
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs\n")
    print("| input | message (stderr, ROOT = the case's folder) | seconds | check |")
    print("| --- | --- | ---: | --- |")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for case in bad.CASES:
            message, seconds, problems = run_case(Path(tmp), case)
            worst = max(worst, seconds)
            shown = message.replace("|", "\\|")
            print(f"| {case.name} | `{shown}` | {seconds:.2f} | {problems or 'exit 2, one line, unchanged'} |")
    print(f"\n{len(bad.CASES)} cases; slowest report {worst:.2f} s")
    print("\n| second writer while a build holds the target | message | seconds |\n| --- | --- | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, message, seconds in second_writer(Path(tmp)):
            print(f"| {name} | `{message}` | {seconds:.2f} |")


if __name__ == "__main__":
    main()
