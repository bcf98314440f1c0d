"""Prints what a sweep in a database shows: per SAE, the absorption metrics (with 95 % intervals) next to
width, L0, layer and architecture, and the rank correlation of each metric with L0 and with width
among the SAEs at one hook and architecture (the published trend: absorption rises as L0 falls and as
width grows).

    python bench/sweep_report.py                       # assets/demo.duckdb
    python bench/sweep_report.py --db data/x.duckdb --hook blocks.6.hook_resid_post --architecture topk
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402

SWEEP_ROWS = """
SELECT s.sae_key, s.layer, s.training_architecture AS arch, s.d_sae AS width, round(s.l0, 1) AS l0,
       round(s.explained_variance, 3) AS ev, round(s.dead_fraction, 3) AS dead,
       a.mean_absorption_fraction AS frac, a.mean_absorption_fraction_low AS frac_lo, a.mean_absorption_fraction_high AS frac_hi,
       a.full_absorption_rate AS full, a.full_absorption_rate_low AS full_lo, a.full_absorption_rate_high AS full_hi,
       a.paper_absorption_rate AS paper, a.paper_absorption_rate_low AS paper_lo, a.paper_absorption_rate_high AS paper_hi,
       a.mean_num_split_latents AS split, a.mean_main_precision AS main_p, a.mean_main_recall AS main_r,
       a.n_letters, s.hook_name
FROM saes s LEFT JOIN sae_absorption a USING (sae_key)
ORDER BY s.layer, s.training_architecture, s.d_sae, s.l0
"""
METRICS = ["frac", "full", "paper", "split", "main_p", "main_r", "ev"]


def interval(value: float, low: float, high: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def print_table(frame: pd.DataFrame) -> None:
    shown = pd.DataFrame({
        "sae": frame.sae_key, "layer": frame.layer, "arch": frame.arch, "width": frame.width, "L0": frame.l0,
        "EV": frame.ev, "absorption fraction": [interval(*r) for r in zip(frame.frac, frame.frac_lo, frame.frac_hi)],
        "full absorption": [interval(*r) for r in zip(frame.full, frame.full_lo, frame.full_hi)],
        "paper rate": [interval(*r) for r in zip(frame.paper, frame.paper_lo, frame.paper_hi)],
        "split": frame.split.round(2), "main P": frame.main_p.round(2), "main R": frame.main_r.round(2),
    })
    print(shown.to_string(index=False))


def print_trends(frame: pd.DataFrame, hook: str, architecture: str) -> None:
    group = frame[(frame.hook_name == hook) & (frame.arch == architecture) & frame.frac.notna()]
    if len(group) < 3:
        print(f"\n(trend: fewer than 3 {architecture} SAEs with absorption results at {hook})")
        return
    print(f"\nSpearman rank correlation over the {len(group)} {architecture} SAEs at {hook}:")
    for metric in METRICS:
        with_l0 = group[metric].corr(group.l0, method="spearman")
        with_width = group[metric].corr(group.width, method="spearman")
        print(f"  {metric:7s} vs L0 {with_l0:+.2f}   vs width {with_width:+.2f}")
    for width, rows in group.groupby("width"):
        ordered = rows.sort_values("l0")
        print(f"  width {width}: absorption fraction by L0 " +
              ", ".join(f"L0 {l0:.0f}: {f:.3f}" for l0, f in zip(ordered.l0, ordered.frac)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--hook", default="blocks.6.hook_resid_post")
    parser.add_argument("--architecture", default="topk")
    args = parser.parse_args()
    with duckdb.connect(str(args.db), read_only=True) as con:
        frame = con.execute(SWEEP_ROWS).df()
    print_table(frame)
    print_trends(frame, args.hook, args.architecture)


if __name__ == "__main__":
    main()
