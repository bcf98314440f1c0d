"""Can absorbing latents be found without a probe? Label-free scores per latent, checked against the latents the
probe-based metrics name as absorbers, on every SAE of the database (issue: absorption beyond first letters, §3).

The scores and their validation are precompute/pipeline/probe_free.py's (the build stores them in latent_scores and
score_validation); this bench recomputes them from the weights and prints every SAE's numbers.
Scores (higher = more suspect), from the SAE's weights and the stored firing density only:
  enc_dec   1 - cosine(encoder column, decoder row): the toy-model finding (Chanin et al.): an absorbing latent's
            decoder carries its parent's direction while its encoder does not, and the parent's encoder gains an
            exception, so the two directions diverge.
  parent    the largest cosine between the latent's decoder row and the decoder row of a denser latent (a
            parent-child decomposition: does a more general latent's direction sit inside this one?).
  density   the latent's density rank: the trivial baseline. Measured here, absorbers are *denser* than the
            average latent (a rarity baseline, 1 - rank, scores below 0.5), so a weight-based score that does not
            beat density alone has found frequent latents, not absorption.
Labels: a latent is a probe-found absorber when it is the stored absorber (absorption_words.absorber) of at least
--min-words fully absorbed words (projection metric), or, separately, of at least one word under the paper's
ablation metric. Only latents that fired on the dashboard tokens count.

Every task the database measured gives its own labels (a latent that absorbs first letters need not absorb
categories); per task, SAE and score: ROC AUC, precision and recall in the top --top-share of latents, each with a 95 % bootstrap interval
over latents (--resamples), and the base rate (a random ranking's precision).

    python bench/probe_free_absorbers.py [--db assets/demo.duckdb] [--min-words 3] [--top-share 0.05] [--task T]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.database import DEFAULT_DB_PATH  # noqa: E402

# the scores and their validation, as the build stores them
from precompute.pipeline import probe_free as pf  # noqa: E402

SAES = "SELECT sae_key, path FROM saes WHERE source = 'local' ORDER BY layer, d_sae, l0, sae_key"
SAE_TASKS = "SELECT task FROM sae_absorption WHERE sae_key = ? ORDER BY task = 'first_letter' DESC, task"


def load_weights(path: Path):
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(path), device="cpu", dtype="float32")
    return sae.W_enc, sae.W_dec


def fmt(stat: pf.Interval) -> str:
    return f"{stat.value:.3f} [{stat.low:.3f}, {stat.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--top-share", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--task", action="append", default=None, help="only these tasks (default: every task)")
    args = parser.parse_args()
    config = pf.ValidationConfig(min_words=args.min_words, top_share=args.top_share, resamples=args.resamples)
    con = duckdb.connect(str(args.db), read_only=True)
    summary: dict[tuple[str, str, str], list[float]] = {}
    print(f"AUC, precision and recall in the top {args.top_share:.0%} of alive latents, 95 % bootstrap over latents")
    for key, path in con.execute(SAES).fetchall():
        density, alive = pf.stored_density(con, key)
        W_enc, W_dec = load_weights(ROOT / path)
        scores = pf.latent_scores(W_enc, W_dec, density)  # recomputed from the weights, as the build does
        for (task,) in con.execute(SAE_TASKS, [key]).fetchall():
            if args.task and task not in args.task:
                continue
            labels = pf.stored_labels(con, key, len(density), args.min_words, task)
            print(f"\n{key} ({task}): {int(alive.sum()):,} alive latents; absorbers: {int(labels['full'][alive].sum())} "
                  f"full (≥ {args.min_words} words), {int(labels['paper'][alive].sum())} paper metric")
            for row in pf.validation_rows(key, scores, alive, labels, config, task):
                if row.auc is None:
                    print(f"  {row.labels:5s} {row.score:8s} too few absorbers to rank")
                    continue
                summary.setdefault((task, row.labels, row.score), []).append(row.auc.value)
                print(f"  {row.labels:5s} {row.score:8s} AUC {fmt(row.auc)}  precision {fmt(row.precision)}  "
                      f"recall {fmt(row.recall)}  (base rate {row.base_rate:.3f})")
    con.close()
    print("\nmean AUC over SAEs:")
    for (task, label_name, name), aucs in sorted(summary.items()):
        print(f"  {task:16s} {label_name:5s} {name:8s} {np.mean(aucs):.3f} (min {np.min(aucs):.3f}, "
              f"max {np.max(aucs):.3f}, {len(aucs)} SAEs)")


if __name__ == "__main__":
    main()
