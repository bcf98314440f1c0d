"""Can absorbing latents be found without a probe? Label-free scores per latent, checked against the latents the
probe-based metrics name as absorbers, on every SAE of the database (issue: absorption beyond first letters, §3).

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

Per SAE and score: ROC AUC and precision in the top --top-share of latents, each with a 95 % bootstrap interval
over latents (--resamples), and the base rate (a random ranking's precision).

    python bench/probe_free_absorbers.py [--db assets/demo.duckdb] [--min-words 3] [--top-share 0.05]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.database import DEFAULT_DB_PATH  # noqa: E402

SAES = "SELECT sae_key, path, d_sae FROM saes WHERE source = 'local' ORDER BY layer, d_sae, l0, sae_key"
DENSITY = "SELECT latent, density, n_fired FROM latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?) ORDER BY latent"
FULL_ABSORBERS = """
SELECT absorber FROM absorption_words
WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?) AND metric = 'projection' AND is_full_absorption AND absorber IS NOT NULL
GROUP BY absorber HAVING count(*) >= ?
"""
PAPER_ABSORBERS = """
SELECT DISTINCT absorber FROM absorption_words
WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?) AND metric = 'ablation' AND is_absorption AND absorber IS NOT NULL
"""


@dataclass(frozen=True)
class Ranking:
    auc: tuple[float, float, float]  # value, low, high
    precision: tuple[float, float, float]  # in the top share
    base_rate: float


def scores_from_weights(W_enc: np.ndarray, W_dec: np.ndarray, density: np.ndarray) -> dict[str, np.ndarray]:
    """W_enc [d_in, d_sae], W_dec [d_sae, d_in], density [d_sae] -> score name -> [d_sae] suspicion."""
    enc = W_enc.T / np.linalg.norm(W_enc.T, axis=1, keepdims=True).clip(1e-12)  # [d_sae, d_in]
    dec = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True).clip(1e-12)  # [d_sae, d_in]
    enc_dec = 1 - (enc * dec).sum(axis=1)
    parent = np.zeros(len(dec))
    for chunk in np.array_split(np.arange(len(dec)), max(1, len(dec) // 512)):
        cos = dec[chunk] @ dec.T  # [chunk, d_sae]
        denser = density[None, :] > density[chunk, None]
        parent[chunk] = np.where(denser, cos, -1.0).max(axis=1).clip(0)
    ranks = density.argsort().argsort() / max(len(density) - 1, 1)
    return {"enc_dec": enc_dec, "parent": parent, "density": ranks}


def precision_at(score: np.ndarray, label: np.ndarray, share: float) -> float:
    top = max(1, int(round(share * len(score))))
    return float(label[np.argsort(-score, kind="stable")[:top]].mean())


def ranking(score: np.ndarray, label: np.ndarray, share: float, resamples: int, seed: int = 0) -> Ranking:
    rng = np.random.default_rng(seed)
    aucs, precisions = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(score), len(score))
        if label[idx].min() == label[idx].max():
            continue
        aucs.append(roc_auc_score(label[idx], score[idx]))
        precisions.append(precision_at(score[idx], label[idx], share))
    interval = lambda xs: (float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5)))  # noqa: E731
    return Ranking((float(roc_auc_score(label, score)), *interval(aucs)),
                   (precision_at(score, label, share), *interval(precisions)), float(label.mean()))


def load_weights(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(path), device="cpu", dtype="float32")
    return sae.W_enc.detach().numpy(), sae.W_dec.detach().numpy()


def fmt(triple: tuple[float, float, float]) -> str:
    return f"{triple[0]:.3f} [{triple[1]:.3f}, {triple[2]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--top-share", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args()
    con = duckdb.connect(str(args.db), read_only=True)
    summary: dict[tuple[str, str], list[float]] = {}
    print(f"AUC and precision in the top {args.top_share:.0%} of alive latents, 95 % bootstrap over latents")
    for key, path, d_sae in con.execute(SAES).fetchall():
        stats = con.execute(DENSITY, [key]).fetchnumpy()
        alive = stats["n_fired"] > 0
        W_enc, W_dec = load_weights(ROOT / path)
        scores = {name: s[alive] for name, s in scores_from_weights(W_enc, W_dec, stats["density"]).items()}
        labels = {}
        for label_name, sql, params in (("full", FULL_ABSORBERS, [key, args.min_words]),
                                        ("paper", PAPER_ABSORBERS, [key])):
            found = np.zeros(d_sae, bool)
            found[[row[0] for row in con.execute(sql, params).fetchall()]] = True
            labels[label_name] = found[alive]
        print(f"\n{key}: {int(alive.sum()):,} alive latents; absorbers: {int(labels['full'].sum())} full "
              f"(≥ {args.min_words} words), {int(labels['paper'].sum())} paper metric")
        for label_name, label in labels.items():
            if label.sum() < 5:
                print(f"  {label_name:5s} too few absorbers to rank")
                continue
            for name, score in scores.items():
                result = ranking(score, label, args.top_share, args.resamples)
                summary.setdefault((label_name, name), []).append(result.auc[0])
                print(f"  {label_name:5s} {name:8s} AUC {fmt(result.auc)}  precision {fmt(result.precision)}"
                      f"  (base rate {result.base_rate:.3f})")
    con.close()
    print("\nmean AUC over SAEs:")
    for (label_name, name), aucs in sorted(summary.items()):
        print(f"  {label_name:5s} {name:8s} {np.mean(aucs):.3f} (min {np.min(aucs):.3f}, max {np.max(aucs):.3f}, "
              f"{len(aucs)} SAEs)")


if __name__ == "__main__":
    main()
