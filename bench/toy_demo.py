"""The projection metric against the ground truth of the toy run in a database (default: the shipped demo).

For each SAE with ground truth (truth_latents; a build on the `toy-hierarchy` model writes it) and each class of
`toy_hierarchy`: the projection metric's absorption flag (absorption fraction > 0 or full absorption) on the words it
judges (the probe's out-of-fold true positives) against the truth (the word holds a child of its parent), as precision
and recall with Wilson 95 % intervals over words (backend/truth.py), pooled over the classes last; then how many
latents are absorbing (a child's decoder carrying its parent).

    python bench/toy_demo.py [--db assets/demo.duckdb]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import truth  # noqa: E402
from backend.database import DEFAULT_DB_PATH, ExplorerDB  # noqa: E402


def rate(r: truth.Rate) -> str:
    return "      -" if r.value is None else f"{r.value:.2f} [{r.low:.2f}, {r.high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    args = parser.parse_args()
    db = ExplorerDB(args.db)
    try:
        keys = [key for key in db.sae_keys() if db.has_truth(key)]
        if not keys:
            print(f"{args.db}: no SAE with ground truth (build one on --model toy-hierarchy)")
            return
        for key in keys:
            print(f"{key} (toy_hierarchy): projection flag vs 'a child is present'")
            print(f"{'class':<8} {'precision [95% CI]':>20} {'recall [95% CI]':>20} {'words':>6} {'TP':>4} {'FP':>4} {'FN':>4}")
            for label, v in truth.verdicts(db.truth_verdict_counts(key, "toy_hierarchy")).items():
                print(f"{label:<8} {rate(v.precision):>20} {rate(v.recall):>20} {v.n_words:>6} {v.true_pos:>4} "
                      f"{v.false_pos:>4} {v.false_neg:>4}")
            latents = db.truth_latents(key)
            print(f"{len(truth.absorbing(latents))} of {len(latents)} latents absorbing (cos >= {truth.ABSORBING_COS} "
                  f"with a child and its parent); parents with a latent of their own (cos > 0.95): "
                  + ", ".join(sorted(set(latents[(latents['role'] == 'parent') & (latents['feature_cos'] > 0.95)]['feature'])))
                  + "\n")
    finally:
        db.close()


if __name__ == "__main__":
    main()
