"""The scale benchmark with the real precompute (issue "Real releases at real scale", §5): random TopK SAEs of
--width latents on the embedded model, --per-hook of them at each of --hooks residual hooks (k cycling through
16..64 so the L0s differ), built by `python -m precompute build` exactly as a user would, one build per hook, with a
small dashboard token count (--rows) and a seeded word subset (--words), without the paper's ablation metric, then:

  - database size per 1,000 latents (the file, everything in it);
  - seconds to add one SAE: the first SAE built alone into an empty database (`DB-first.duckdb`), against one more
    SAE built alone at an existing hook once all the others are in (the 51st with the defaults);
  - p50/p95 server-side render time of every view (AppTest, warm caches, as bench/scale_views.py).

Random weights (unit decoder rows, encoder = decoder transposed, the shipped 4k-k32's b_dec) measure sizes and
times, not findings. Resumable: SAE folders, the database and the timings (`DB.timings.json`) persist, a rerun
skips what is done (and a killed build resumes inside `precompute build` itself).

    python bench/scale.py [--db data/scale-real.duckdb] [--hooks 10] [--per-hook 5] [--width 16384]
                          [--rows 100000:100008] [--words 1000] [--renders 10] [--views-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from list_pages_scale import nearest_rank, render_ms, scan_component_manifests_once  # noqa: E402
from memory_by_width import random_topk_sae  # noqa: E402

KS = (16, 24, 32, 48, 64)  # per SAE at a hook, cycling: a spread of L0s for the list pages' filters
FIRST_HOOK = 1


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def sae_key(layer: int, index: int) -> str:
    return f"scale-l{layer}-s{index}"


def sae_folder(root: Path, layer: int, index: int, width: int) -> Path:
    folder = root / sae_key(layer, index)
    if not folder.exists():
        partial = folder.with_name(folder.name + ".partial")
        random_topk_sae(partial, width, seed=1000 * layer + index, hook_name=hook_name(layer), k=KS[index % len(KS)])
        partial.rename(folder)  # a folder that exists is complete
    return folder


class Timings:
    """Seconds per finished step, persisted after each so a rerun skips it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}

    def run(self, step: str, command: list[str]) -> float:
        if step not in self.seconds:
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True)
            self.seconds[step] = time.perf_counter() - start
            self.path.write_text(json.dumps(self.seconds, indent=1))
        return self.seconds[step]


def build_command(args: argparse.Namespace, saes: list[tuple[str, Path]], db: Path | None = None) -> list[str]:
    specs = [part for key, folder in saes for part in ("--sae", f"{key}={folder}")]
    # the paper's ablation metric (gradients through the model per candidate word, minutes per SAE on CPU) is off:
    # it adds a few rows per letter, nothing to the sizes measured here
    return [sys.executable, "-m", "precompute", "build", *specs, "--rows", args.rows, "--absorption-words",
            str(args.words), "--no-ablation-metric", "--db", str(db or args.db)]


def build_all(args: argparse.Namespace, timings: Timings) -> tuple[float, float]:
    """(seconds of the first SAE alone into an empty database, seconds of one more SAE at an existing hook)."""
    root = args.db.with_name(args.db.stem + "-saes")
    layers = range(FIRST_HOOK, FIRST_HOOK + args.hooks)
    # the first SAE into its own empty database (kept apart, so this step can be re-measured on a quiet machine)
    alone = args.db.with_name(args.db.stem + "-first.duckdb")
    first_sae = (sae_key(FIRST_HOOK, 0), sae_folder(root, FIRST_HOOK, 0, args.width))
    first = timings.run("first", build_command(args, [first_sae], alone))
    print(f"first SAE alone: {first:.0f} s", flush=True)
    for layer in layers:
        saes = [(sae_key(layer, i), sae_folder(root, layer, i, args.width)) for i in range(args.per_hook)]
        seconds = timings.run(f"hook {layer}", build_command(args, saes))
        print(f"hook {hook_name(layer)}: {len(saes)} SAEs in {seconds:.0f} s", flush=True)
    extra = (sae_key(FIRST_HOOK, args.per_hook), sae_folder(root, FIRST_HOOK, args.per_hook, args.width))
    added = timings.run("added", build_command(args, [extra]))
    return first, added


def size_report(db: Path) -> None:
    with duckdb.connect(str(db), read_only=True) as con:
        n_saes, n_latents, n_hooks = con.execute(
            "SELECT count(*), sum(d_sae), count(DISTINCT hook_name) FROM saes").fetchall()[0]
    size = db.stat().st_size
    print(f"{db}: {n_saes} SAEs, {n_latents:,} latents over {n_hooks} hooks; {size / 1e6:,.1f} MB = "
          f"{size / 1e6 / (n_latents / 1000):.3f} MB per 1,000 latents (the whole file)")


def views(args: argparse.Namespace) -> tuple[tuple[str, dict[str, str]], ...]:
    middle = FIRST_HOOK + args.hooks // 2
    key = sae_key(middle, min(2, args.per_hook - 1))
    return (
        ("overview", {}), ("overview", {"group": "layer"}),
        ("latent", {"sae": key, "latent": str(args.width * 3 // 4)}),
        ("browse", {"sae": key}), ("browse", {"sae": key, "q": "water"}),
        ("letter", {"sae": key, "letter": "s"}),
        ("token", {"token": "snake"}), ("token", {"token": "stone"}),
        ("compare", {}), ("compare", {"layer": str(middle)}),
        ("live", {"sae": key}),
    )


def view_report(args: argparse.Namespace) -> None:
    import os

    os.environ["EXPLORER_DB"] = str(args.db)
    scan_component_manifests_once()
    print(f"{args.renders} warm renders per view (AppTest, server side):")
    for page, params in views(args):
        times = render_ms(page, params, args.renders)
        print(f"  {page:9s} {str(params):44s} p50 {statistics.median(times):6.0f} ms   "
              f"p95 {nearest_rank(times, 0.95):6.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "data/scale-real.duckdb")
    parser.add_argument("--hooks", type=int, default=10)
    parser.add_argument("--per-hook", type=int, default=5)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--rows", default="100000:100008", help="dashboard corpus rows (128 tokens each)")
    parser.add_argument("--words", type=int, default=1000, help="seeded subset of the alphabetic vocabulary")
    parser.add_argument("--renders", type=int, default=10)
    parser.add_argument("--views-only", action="store_true", help="measure the views of the database as it is")
    args = parser.parse_args()
    args.db = args.db.resolve()
    if not args.views_only:
        timings = Timings(args.db.with_name(args.db.name + ".timings.json"))
        first, added = build_all(args, timings)
        per_hook = [timings.seconds[f"hook {layer}"] / args.per_hook
                    for layer in range(FIRST_HOOK, FIRST_HOOK + args.hooks)]
        print(f"adding one SAE: the first, alone into an empty database, {first:.0f} s; one more at an existing "
              f"hook, alone into the {args.hooks * args.per_hook + 1}-SAE database, {added:.0f} s "
              f"({added / first:.2f}x); in the per-hook builds {statistics.median(per_hook):.0f} s per SAE (median)")
    size_report(args.db)
    view_report(args)


if __name__ == "__main__":
    main()
