"""Two SAEs at one hook, measured against the same probe run, compared word by word: per task, each SAE's headline
absorption (mean over the included classes of the per-class mean over the probe's true positives) and the paired
difference B - A with a 95 % interval from a paired bootstrap over words, stratified by class (the same resampled
words for both SAEs, so what the two share — words, probe, folds — cancels; what is left is the SAEs).

    python bench/paired_absorption.py smollm2-l6-topk-4k-k32 smollm2-l6-matryoshka-4k-k32
    python bench/paired_absorption.py A B --db data/x.duckdb --resamples 2000

Each task's numbers: absorption fraction (SAEBench's projection metric; 0 for a true positive without a row) and
full-absorption rate. A task where the two SAEs were measured against different probe runs is skipped with a note.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402

PROBE_RUNS = """
    SELECT task, probe_run_id FROM sae_absorption WHERE sae_key = ? ORDER BY task = 'first_letter' DESC, task"""
INCLUDED = "SELECT letter FROM sae_letters WHERE sae_key = ? AND task = ? AND included ORDER BY letter"
# Every true positive of the probe run (its out-of-fold probe reads its own class) with both SAEs' projection rows.
PAIRED_WORDS = """
    WITH tp AS (
        SELECT token_id, letter FROM probe_words
        WHERE probe_run_id = $run AND is_test AND probe_logit > 0 AND letter IN (SELECT unnest($classes))
    ), rows AS (
        SELECT n.sae_key, w.token_id, w.absorption_fraction, w.is_full_absorption
        FROM absorption_words w JOIN sae_numbers n USING (sae_num)
        WHERE w.probe_run_id = $run AND w.task = $task AND w.metric = 'projection' AND n.sae_key IN ($a, $b)
    )
    SELECT tp.letter,
           coalesce(a.absorption_fraction, 0) AS fraction_a, coalesce(b.absorption_fraction, 0) AS fraction_b,
           coalesce(a.is_full_absorption, false) AS full_a, coalesce(b.is_full_absorption, false) AS full_b
    FROM tp
    LEFT JOIN rows a ON a.token_id = tp.token_id AND a.sae_key = $a
    LEFT JOIN rows b ON b.token_id = tp.token_id AND b.sae_key = $b
    ORDER BY tp.letter, tp.token_id"""


@dataclass(frozen=True)
class Paired:
    """Per word (probe true positives of the included classes): its class index and both SAEs' value."""
    classes: np.ndarray  # [n] class index
    a: np.ndarray  # [n]
    b: np.ndarray  # [n]

    def headline(self, values: np.ndarray, index: np.ndarray | None = None) -> float:
        """Mean over classes of the per-class mean (SAEBench's headline), on the words `index` picks."""
        classes = self.classes if index is None else self.classes[index]
        chosen = values if index is None else values[index]
        sums = np.bincount(classes, weights=chosen)
        counts = np.bincount(classes)
        present = counts > 0
        return float((sums[present] / counts[present]).mean())


def stratified_resample(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Word indices drawn with replacement within each class, as many as it has."""
    parts = []
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        parts.append(rng.choice(members, size=len(members), replace=True))
    return np.concatenate(parts)


def paired_interval(p: Paired, resamples: int, seed: int) -> tuple[float, float, float]:
    """(B - A, low, high): the headline difference and its 95 % paired stratified bootstrap interval."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        index = stratified_resample(p.classes, rng)
        diffs.append(p.headline(p.b, index) - p.headline(p.a, index))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return p.headline(p.b) - p.headline(p.a), float(low), float(high)


def paired_words(con: duckdb.DuckDBPyConnection, run: str, task: str, a: str, b: str,
                 classes: list[str]) -> tuple[Paired, Paired]:
    rows = con.execute(PAIRED_WORDS, {"run": run, "task": task, "a": a, "b": b, "classes": classes}).fetchall()
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r[0]] for r in rows], dtype=np.int64)
    fraction = Paired(labels, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]))
    full = Paired(labels, np.array([r[3] for r in rows], dtype=float), np.array([r[4] for r in rows], dtype=float))
    return fraction, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the reference SAE key")
    parser.add_argument("b", help="the SAE compared with it")
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with duckdb.connect(str(args.db), read_only=True) as con:
        runs_a = dict(con.execute(PROBE_RUNS, [args.a]).fetchall())
        runs_b = dict(con.execute(PROBE_RUNS, [args.b]).fetchall())
        if not runs_a or not runs_b:
            sys.exit(f"no absorption results for {args.a if not runs_a else args.b} in {args.db}")
        print(f"A = {args.a}, B = {args.b}; B - A with a 95 % paired bootstrap interval over words "
              f"({args.resamples} resamples, stratified by class)")
        print(f"{'task':18} {'classes':>7} {'words':>6} {'metric':20} {'A':>7} {'B':>7} {'B - A [95% CI]':>26}")
        for task, run in runs_a.items():
            if runs_b.get(task) != run:
                print(f"{task:18} skipped: {'not measured on B' if task not in runs_b else 'different probe runs'}")
                continue
            classes = [r[0] for r in con.execute(INCLUDED, [args.a, task]).fetchall()]
            for name, paired in zip(("absorption fraction", "full-absorption rate"),
                                    paired_words(con, run, task, args.a, args.b, classes)):
                diff, low, high = paired_interval(paired, args.resamples, args.seed)
                print(f"{task:18} {len(classes):7d} {len(paired.a):6d} {name:20} {paired.headline(paired.a):7.3f} "
                      f"{paired.headline(paired.b):7.3f} {f'{diff:+.3f} [{low:+.3f}, {high:+.3f}]':>26}")


if __name__ == "__main__":
    main()
