"""Where in a Matryoshka SAE's nested prefixes the absorption roles sit, against a TopK peer cut at the same bounds.

A Matryoshka SAE is trained so that its first 128 latents reconstruct alone, then the first 512, and so on: the
early groups should hold general features (a class such as a first letter) and the later ones the specific latents
(a word) that absorb them. Per task, for each SAE: the share of the included classes' main latents, of their split
latents, and of the absorbing latents of fully absorbed words (one per word, so weighted by words) that fall in each
nested group, next to the group's share of all latents (what a role spread evenly would show). Then, per SAE and
task, how dense those absorbers are: the paper's absorbers are token-aligned latents that fire rarely; a latent that
fires on a large share of all tokens carrying the probe direction is a different thing that the metric counts alike.

    python bench/matryoshka_levels.py smollm2-l6-matryoshka-4k-k32 smollm2-l6-topk-4k-k32
    python bench/matryoshka_levels.py KEY [KEY ...] --widths 128,512,1024,2048,4096 --db data/x.duckdb

The bounds are the first SAE's `matryoshka_widths` (its recipe in recipes/saes/KEY.json), unless --widths names them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402
from backend.scores import DENSE_ABSORBER  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TASKS = "SELECT DISTINCT task FROM sae_absorption WHERE sae_key = ? ORDER BY task = 'first_letter' DESC, task"
ROLE_LATENTS = """
    SELECT main_latent, split_latents FROM sae_letters WHERE sae_key = ? AND task = ? AND included"""
# The absorber of every fully absorbed word of an included class (one latent per word), with its density (share of
# dashboard tokens it fires on).
ABSORBERS = """
    SELECT w.absorber, d.density FROM absorption_words w JOIN sae_numbers n USING (sae_num)
    JOIN latents d ON d.sae_num = w.sae_num AND d.latent = w.absorber
    JOIN sae_letters l ON l.sae_key = n.sae_key AND l.task = w.task AND l.letter = w.letter AND l.included
    WHERE n.sae_key = ? AND w.task = ? AND w.metric = 'projection' AND w.is_full_absorption
      AND w.absorber IS NOT NULL"""
WIDTH = "SELECT d_sae FROM saes WHERE sae_key = ?"
DENSE = DENSE_ABSORBER  # a latent that fires on at least 10 % of all tokens is no token-aligned latent
TRUE_POSITIVES = "SELECT sum(n_probe_true_positives) FROM sae_letters WHERE sae_key = ? AND task = ? AND included"


def recipe_widths(sae_key: str) -> list[int] | None:
    recipe = REPO / "recipes" / "saes" / f"{sae_key}.json"
    if not recipe.exists():
        return None
    return json.loads(recipe.read_text()).get("matryoshka_widths")


def group_shares(latents: list[int], bounds: list[int]) -> np.ndarray:
    """Share of `latents` in each nested group [0, b0), [b0, b1), ..."""
    if not latents:
        return np.full(len(bounds), np.nan)
    groups = np.searchsorted(np.asarray(bounds), np.asarray(latents), side="right")
    return np.bincount(groups, minlength=len(bounds))[: len(bounds)] / len(latents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sae_keys", nargs="+")
    parser.add_argument("--widths", help="nested group bounds, comma-separated (default: the first SAE's recipe)")
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    args = parser.parse_args()
    bounds = [int(w) for w in args.widths.split(",")] if args.widths else recipe_widths(args.sae_keys[0])
    if not bounds:
        sys.exit(f"{args.sae_keys[0]} has no matryoshka_widths in its recipe: pass --widths")
    con = duckdb.connect(str(args.db), read_only=True)
    labels = [f"<{bounds[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in zip(bounds, bounds[1:])]
    print(f"share of each role's latents per nested group ({', '.join(labels)}); 'all latents' is the group's share "
          "of the width")
    print(f"{'SAE':32s} {'task':17s} {'role':16s} {'n':>6s}  " + " ".join(f"{label:>9s}" for label in labels))
    for key in args.sae_keys:
        width = con.execute(WIDTH, [key]).fetchone()
        if width is None:
            sys.exit(f"no SAE {key} in {args.db}")
        sizes = np.diff([0] + bounds) / width[0]
        print(f"{key:32s} {'':17s} {'all latents':16s} {width[0]:6d}  " + " ".join(f"{s:9.3f}" for s in sizes))
        for (task,) in con.execute(TASKS, [key]).fetchall():
            rows = con.execute(ROLE_LATENTS, [key, task]).fetchall()
            mains = [int(main) for main, _ in rows]
            splits = [int(s) for _, split in rows for s in split]
            absorbers = [int(a) for a, _ in con.execute(ABSORBERS, [key, task]).fetchall()]
            for role, latents in (("main latents", mains), ("split latents", splits),
                                  ("absorbers (words)", absorbers)):
                shares = group_shares(latents, bounds)
                print(f"{key:32s} {task:17s} {role:16s} {len(latents):6d}  "
                      + " ".join(f"{s:9.3f}" for s in shares))
    print(f"\nabsorbers of fully absorbed words by density: words, distinct absorbers, median density, share of words "
          f"whose absorber fires on >= {DENSE:.0%} of tokens;\nfully absorbed words per probe true positive (pooled over "
          f"the included classes), with any absorber and with a sparse one only")
    print(f"{'SAE':32s} {'task':17s} {'words':>6s} {'latents':>8s} {'median':>7s} {'dense':>6s} {'full/TP':>8s} "
          f"{'sparse/TP':>9s}")
    for key in args.sae_keys:
        for (task,) in con.execute(TASKS, [key]).fetchall():
            found = con.execute(ABSORBERS, [key, task]).fetchall()
            if not found:
                continue
            latents, density = zip(*found)
            density = np.asarray(density)
            (true_positives,) = con.execute(TRUE_POSITIVES, [key, task]).fetchone()
            print(f"{key:32s} {task:17s} {len(found):6d} {len(set(latents)):8d} {np.median(density):7.3f} "
                  f"{(density >= DENSE).mean():6.3f} {len(found) / true_positives:8.3f} "
                  f"{(density < DENSE).sum() / true_positives:9.3f}")


if __name__ == "__main__":
    main()
