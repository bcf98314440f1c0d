"""Absorption beyond first letters: every task's headline metrics per SAE, with their 95 % intervals (words and
folds resampled, so they cover the probe and split-latent choice too), and per class the probe's F1, the model's
own accuracy (where the model itself cannot do the task) and the absorption numbers.

    python bench/task_absorption.py                   # assets/demo.duckdb
    python bench/task_absorption.py --db data/x.duckdb --classes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402

TASKS = "SELECT task, title, classes FROM tasks ORDER BY task = 'first_letter' DESC, task"
HEADLINES = """
    SELECT a.sae_key, s.hook_name, s.d_sae, round(s.l0, 1) AS l0, s.architecture, a.n_letters,
           a.mean_absorption_fraction, a.mean_absorption_fraction_low, a.mean_absorption_fraction_high,
           a.full_absorption_rate, a.full_absorption_rate_low, a.full_absorption_rate_high,
           a.paper_absorption_rate, a.paper_absorption_rate_low, a.paper_absorption_rate_high,
           a.mean_probe_f1, a.mean_main_f1, a.n_unstable_letters
    FROM sae_absorption a JOIN saes s USING (sae_key)
    WHERE a.task = ? ORDER BY s.layer, s.d_sae, s.l0, a.sae_key"""
CLASSES = """
    SELECT p.letter, p.n_test, p.probe_f1, p.model_accuracy, p.model_checked,
           avg(l.mean_absorption_fraction) AS fraction, avg(l.full_absorption_rate) AS full, count(l.sae_key) AS n_saes
    FROM letter_probes p JOIN probe_runs r USING (probe_run_id)
    LEFT JOIN sae_letters l ON l.probe_run_id = p.probe_run_id AND l.letter = p.letter AND l.task = p.task
    WHERE p.task = ? AND r.hook_name = ?
    GROUP BY ALL ORDER BY p.letter"""
CHANCE_FACTOR = 2.0  # a class the model answers at under twice chance accuracy: the model cannot do it there


def interval(value, low, high) -> str:
    if value is None:
        return "        -          "
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def print_headlines(con: duckdb.DuckDBPyConnection, task: str, title: str) -> None:
    rows = con.execute(HEADLINES, [task]).fetchall()
    print(f"\n## {title} ({task}): {len(rows)} SAE(s)")
    print(f"{'SAE':32} {'hook':26} {'cls':>3} {'absorption fraction':>22} {'full-absorption rate':>22} "
          f"{'paper (ablation) rate':>22} {'probe F1':>8} {'main F1':>7} {'unstable':>8}")
    for (key, hook, _, _, _, n, f, fl, fh, u, ul, uh, p, pl, ph, probe_f1, main_f1, unstable) in rows:
        print(f"{key:32} {hook:26} {n:3d} {interval(f, fl, fh):>22} {interval(u, ul, uh):>22} {interval(p, pl, ph):>22} "
              f"{probe_f1 or 0:8.3f} {main_f1 or 0:7.3f} {unstable:8d}")


def print_classes(con: duckdb.DuckDBPyConnection, task: str, n_classes: int) -> None:
    hooks = [r[0] for r in con.execute("SELECT DISTINCT hook_name FROM probe_runs WHERE task = ? ORDER BY 1", [task]).fetchall()]
    chance = 1 / n_classes
    for hook in hooks:
        print(f"\n  per class at {hook} (absorption: mean over the hook's SAEs; chance accuracy {chance:.3f})")
        print(f"  {'class':12} {'words':>6} {'probe F1':>8} {'model acc':>9} {'checked':>7} {'fraction':>8} {'full':>6}")
        for label, n_test, f1, acc, checked, fraction, full, _ in con.execute(CLASSES, [task, hook]).fetchall():
            flag = "  <- the model cannot do this class" if checked and acc < CHANCE_FACTOR * chance else ""
            print(f"  {label:12} {n_test:6d} {f1:8.3f} {acc:9.3f} {checked:7d} {fraction or 0:8.3f} {full or 0:6.3f}{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--classes", action="store_true", help="also the per-class table of every task but first_letter")
    args = parser.parse_args()
    with duckdb.connect(str(args.db), read_only=True) as con:
        for task, title, classes in con.execute(TASKS).fetchall():
            print_headlines(con, task, title)
            if args.classes and task != "first_letter":
                print_classes(con, task, len(classes))


if __name__ == "__main__":
    main()
