"""How precise a latent's cosine with a class's probe direction is, against the step latent_letter_cos stores it in.

The pages show each latent's decoder and encoder cosine with the probe direction of every class (the probe trained
on all the task's words). That direction is itself an estimate: the K fold probes of the cross-fitted run, each
trained on (K-1)/K of the words, point in directions whose pairwise cosine is ~0.92 for first letters. This prints,
per SAE and task, the spread of every latent's cosine across those fold probes (its SD over folds, median and 90th
percentile over every latent and class, and over the latents with |cos| >= 0.1 with the class), next to the error
of storing the cosine in hundredths (uniform, SD 0.01 / sqrt(12) = 0.0029, at most 0.005) and thousandths.

    python bench/cosine_precision.py                     # assets/demo.duckdb, every SAE with cross-fitted results
    python bench/cosine_precision.py --db data/x.duckdb --sae smollm2-l6-topk-4k-k32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402
from precompute.absorption.measure import SAEWeights, normalized_sae, row_cosines  # noqa: E402
from precompute.loading.sae import SAESpec, load_sae  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEASURED = """
SELECT a.sae_key, a.task, a.probe_run_id, s.path FROM sae_absorption a JOIN saes s USING (sae_key)
WHERE a.split_mode = 'crossfit' AND s.source = 'local' ORDER BY s.layer, s.d_sae, a.sae_key, a.task
"""
FOLD_PROBES = "SELECT fold, letter, weight FROM probe_folds WHERE probe_run_id = ? ORDER BY fold, letter"
HUNDREDTHS_SD = 0.01 / np.sqrt(12)
RELEVANT = 0.1  # |cos| at which a latent is a candidate for the class on the pages (the scatter's upper region)


def fold_directions(con, run_id: str) -> np.ndarray:
    """[n_folds, n_classes, d_model] unit directions of the run's fold probes."""
    rows = con.execute(FOLD_PROBES, [run_id]).fetchall()
    folds = sorted({fold for fold, _, _ in rows})
    weights = np.array([np.asarray(w, np.float64) for _, _, w in rows]).reshape(len(folds), -1, len(rows[0][2]))
    return weights / np.linalg.norm(weights, axis=-1, keepdims=True)


def spread(rows: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[d_sae, n_classes] SD over folds of each row's cosine with each class's fold direction, and its mean."""
    cosines = np.stack([row_cosines(rows, fold.astype(rows.dtype)) for fold in directions])  # [folds, d_sae, classes]
    return cosines.std(axis=0, ddof=1), cosines.mean(axis=0)


def main() -> None:
    import duckdb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--sae", action="append", help="only these SAE keys (default: every measured local SAE)")
    args = parser.parse_args()
    con = duckdb.connect(str(args.db), read_only=True)
    print(f"storing in hundredths: error SD {HUNDREDTHS_SD:.4f}, at most 0.005; thousandths: SD {HUNDREDTHS_SD / 10:.5f}")
    print(f"{'SAE':32s} {'task':17s} {'which':8s} {'SD over folds: median':>22s} {'p90':>7s} {'pairs':>9s}")
    loaded: dict[str, SAEWeights] = {}
    medians = []
    for key, task, run_id, path in con.execute(MEASURED).fetchall():
        if args.sae and key not in args.sae:
            continue
        if key not in loaded:
            folder = Path(path) if Path(path).is_absolute() else ROOT / path
            loaded[key] = SAEWeights.of(normalized_sae(load_sae(SAESpec(key=key, path=folder))))
        weights = loaded[key]
        directions = fold_directions(con, run_id)
        for which, rows in (("decoder", weights.W_dec), ("encoder", weights.W_enc_rows)):
            sd, mean = spread(rows, directions)
            for label, mask in (("all", np.ones_like(sd, bool)), (f"|cos|>={RELEVANT}", np.abs(mean) >= RELEVANT)):
                values = sd[mask]
                if not len(values):
                    continue
                median, p90 = np.median(values), np.percentile(values, 90)
                medians.append(median)
                print(f"{key:32s} {task:17s} {which:8s} {label:>12s} {median:9.4f} {p90:7.4f} {len(values):9,d}")
    print(f"\nlowest median SD over folds: {min(medians):.4f} = {min(medians) / HUNDREDTHS_SD:.1f} x the hundredths "
          f"rounding SD ({HUNDREDTHS_SD:.4f})")


if __name__ == "__main__":
    main()
