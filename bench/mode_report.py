"""Two builds of the same SAEs side by side: one measured with SAEBench's 80/20 split (holdout), one
cross-fitted: per SAE the headline numbers with their intervals, the between-fold SD, how many letters'
split latents change between folds, and the stored per-SAE seconds of the steps the mode changes.

    git show 41d0763:assets/demo.duckdb > /tmp/holdout.duckdb      # the schema-v6 demo (holdout)
    python -m precompute migrate --db /tmp/holdout.duckdb
    python bench/mode_report.py --holdout /tmp/holdout.duckdb --crossfit assets/demo.duckdb

(`bench/split_modes.py` runs both modes in one process on the same word activations instead.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb

SUMMARY = """
SELECT a.sae_key, a.split_mode, a.n_folds, a.n_letters,
       a.mean_absorption_fraction, a.mean_absorption_fraction_low, a.mean_absorption_fraction_high,
       a.full_absorption_rate, a.full_absorption_rate_low, a.full_absorption_rate_high,
       a.paper_absorption_rate, a.paper_absorption_rate_low, a.paper_absorption_rate_high,
       a.fold_sd_absorption_fraction, a.n_unstable_letters, a.mean_num_split_latents, a.seconds,
       r.n_test AS n_measured, r.seconds AS run_seconds
FROM sae_absorption a JOIN saes s USING (sae_key) JOIN probe_runs r USING (probe_run_id)
WHERE a.task = 'first_letter'  -- the mode comparison is on the paper's task
ORDER BY s.layer, s.d_sae, s.l0, a.sae_key
"""


def rows(path: Path) -> dict[str, dict]:
    with duckdb.connect(str(path), read_only=True) as con:
        frame = con.execute(SUMMARY).df()
    return {r["sae_key"]: r for r in frame.to_dict("records")}


def interval(row: dict, name: str, low: str, high: str) -> str:
    if row[name] is None or row[name] != row[name]:
        return "—"
    return f"{row[name]:.3f} [{row[low]:.3f}, {row[high]:.3f}]"


def fraction(row: dict) -> str:
    return interval(row, "mean_absorption_fraction", "mean_absorption_fraction_low", "mean_absorption_fraction_high")


def full(row: dict) -> str:
    return interval(row, "full_absorption_rate", "full_absorption_rate_low", "full_absorption_rate_high")


def width(row: dict) -> float:
    return row["mean_absorption_fraction_high"] - row["mean_absorption_fraction_low"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--crossfit", type=Path, required=True)
    args = parser.parse_args()
    holdout, crossfit = rows(args.holdout), rows(args.crossfit)
    shared = [k for k in crossfit if k in holdout]
    print(f"{'SAE':30s} {'mode':9s} {'words':>6s}  {'mean absorption fraction':26s} {'full-absorption rate':26s} "
          f"{'CI width':>8s} {'fold SD':>7s} {'unstable':>8s} {'k-sparse s':>10s}")
    totals = {"holdout": 0.0, "crossfit": 0.0}
    for key in shared:
        for mode, row in (("holdout", holdout[key]), ("crossfit", crossfit[key])):
            seconds = json.loads(row["seconds"])
            totals[mode] += seconds.get("k_sparse", 0.0)
            sd = row["fold_sd_absorption_fraction"]
            print(f"{key:30s} {mode:9s} {int(row['n_measured']):6d}  {fraction(row):26s} {full(row):26s} "
                  f"{width(row):8.3f} {'—' if sd is None or sd != sd else f'{sd:.3f}':>7s} "
                  f"{int(row['n_unstable_letters']):>3d}/{int(row['n_letters']):<4d} {seconds.get('k_sparse', 0.0):10.1f}")
    print(f"\nk-sparse probing (the step cross-fitting repeats per fold), summed over {len(shared)} SAEs: holdout "
          f"{totals['holdout']:.0f} s, crossfit {totals['crossfit']:.0f} s (+{totals['crossfit'] - totals['holdout']:.0f} s; "
          "stored seconds, so they carry each build's machine load)")
    for name, db in (("holdout", holdout), ("crossfit", crossfit)):
        shared_seconds = {}
        for row in db.values():
            shared_seconds.update({row["sae_key"]: json.loads(row["run_seconds"])})
        print(f"{name}: shared per-hook seconds per run: "
              + "; ".join(sorted({json.dumps(v, sort_keys=True) for v in shared_seconds.values()})))


if __name__ == "__main__":
    main()
