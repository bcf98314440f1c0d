"""Single process vs Ray on the embedded sweep: the same `precompute build` (the shipped SAEs at 3 hooks,
dashboards only, a few corpus rows so it fits a CPU) run as one process and with a local Ray runtime of 1 and 2
CPUs, wall time each. Ray runs one task per hook, and each task loads the model itself, so on one machine the
fan-out pays a model load per hook; the per-task overhead printed is (Ray wall with 1 CPU - single wall) / tasks.

    python bench/ray_build.py [--rows 100000:100128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = "recipes/sweeps/smollm2-embedded.json"


def timed_build(db: Path, rows: str, extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "precompute", "build", "--sweep", SWEEP, "--rows", rows, "--no-absorption",
                    "--fresh", "--db", str(db), *extra], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000:100128")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs = {"single process": [], "ray, 1 CPU": ["--ray", "--ray-cpus", "1"], "ray, 2 CPUs": ["--ray", "--ray-cpus", "2"]}
        walls = {name: timed_build(Path(scratch) / f"{i}.duckdb", args.rows, extra)
                 for i, (name, extra) in enumerate(runs.items())}
    n_saes = len(json.loads((ROOT / SWEEP).read_text())["recipes"])
    print(f"{n_saes} SAEs at 3 hooks, dashboards on corpus rows {args.rows}, fresh database each:")
    for name, wall in walls.items():
        print(f"  {name:15s} {wall:6.1f} s")
    print(f"  Ray overhead per task (3 tasks, 1 CPU vs single process): "
          f"{(walls['ray, 1 CPU'] - walls['single process']) / 3:.1f} s")


if __name__ == "__main__":
    main()
