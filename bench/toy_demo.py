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


# The projection rows of words that hold no child (false positives: flagged, nothing to absorb), by absorber.
FALSE_POSITIVE_ABSORBERS = """
    SELECT w.letter, w.absorber, count(*) AS n
    FROM absorption_words w JOIN sae_numbers n USING (sae_num) JOIN saes s ON s.sae_key = n.sae_key
    JOIN truth_words t ON t.model_name = s.model_name AND t.token_id = w.token_id
    WHERE n.sae_key = ? AND w.task = 'toy_hierarchy' AND w.metric = 'projection' AND NOT t.absorbable
    GROUP BY ALL ORDER BY ALL"""


def print_split_latents(db: ExplorerDB, key: str, absorbing) -> None:
    """Per class, its split latents and what each is in truth: an absorbing child latent among them means the
    words holding that child are never flagged (the metric treats the absorber as the feature)."""
    by_latent = db.truth_latents(key).set_index("latent")
    for label, split in db._rows("SELECT letter, split_latents FROM sae_letters WHERE sae_key = ? AND task = "
                                 "'toy_hierarchy' ORDER BY letter", [key]):
        kinds = [f"{latent} ({'absorbs ' + by_latent.loc[latent, 'child'] if latent in set(absorbing['latent']) else by_latent.loc[latent, 'feature']})"
                 for latent in split]
        n_absorbing = sum(latent in set(absorbing["latent"]) for latent in split)
        print(f"  {label}: split latents {', '.join(kinds)}: {n_absorbing} of them absorbing child latents")
    for label, absorber, n in db._rows(FALSE_POSITIVE_ABSORBERS, [key]):
        what = "none" if absorber is None else f"latent {absorber} ({by_latent.loc[absorber, 'feature']})"
        print(f"  {label}: {n} false positive(s) whose absorber is {what}")


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
            absorbing = truth.absorbing(latents)
            print(f"{len(absorbing)} of {len(latents)} latents absorbing (cos >= {truth.ABSORBING_COS} with a child "
                  f"and its parent; their cosines: child {absorbing['child_cos'].min():.2f}-"
                  f"{absorbing['child_cos'].max():.2f}, parent {absorbing['parent_cos'].min():.2f}-"
                  f"{absorbing['parent_cos'].max():.2f}); parents with a latent of their own (cos > "
                  f"{truth.OWN_LATENT_COS}): " + ", ".join(truth.own_latent_features(latents)))
            print_split_latents(db, key, absorbing)
            print()
    finally:
        db.close()


if __name__ == "__main__":
    main()
