"""Prints what a sweep in a database shows: per SAE, the absorption metrics (with 95 % intervals) next to
width, L0, layer and architecture, and the rank correlation of each metric with L0 and with width
among the SAEs at one hook and architecture (the published trend: absorption rises as L0 falls and as
width grows).

    python bench/sweep_report.py                       # assets/demo.duckdb
    python bench/sweep_report.py --db data/x.duckdb --hook blocks.6.hook_resid_post --architecture topk
    python bench/sweep_report.py --letters smollm2-l6-topk-4k-k32   # one SAE's headline and per-letter numbers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH, ExplorerDB  # noqa: E402

# the compare page's per-SAE rows, under short names for the printed table
SHORT_NAMES = {
    "training_architecture": "arch", "d_sae": "width", "explained_variance": "ev",
    "mean_absorption_fraction": "frac", "mean_absorption_fraction_low": "frac_lo",
    "mean_absorption_fraction_high": "frac_hi", "full_absorption_rate": "full", "full_absorption_rate_low": "full_lo",
    "full_absorption_rate_high": "full_hi", "paper_absorption_rate": "paper", "paper_absorption_rate_low": "paper_lo",
    "paper_absorption_rate_high": "paper_hi", "mean_num_split_latents": "split", "mean_main_precision": "main_p",
    "mean_main_recall": "main_r",
}
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


def print_letters(db: ExplorerDB, sae_key: str) -> None:
    """One SAE's headline numbers and, per letter, probe F1 / stability and the absorption fraction with its interval."""
    summary = db.sae_absorption(sae_key)
    if summary is None:
        raise SystemExit(f"no absorption results for {sae_key!r} in {db.path}")
    print(f"{sae_key} (probe run {summary['probe_run_id']}, {summary['n_letters']} letters with probe F1 > 0.6):")
    for name, column in (("mean absorption fraction", "mean_absorption_fraction"),
                         ("full-absorption rate", "full_absorption_rate"), ("paper absorption rate", "paper_absorption_rate")):
        print(f"  {name}: {interval(summary[column], summary[f'{column}_low'], summary[f'{column}_high'])}")
    print(f"  std of the fraction over letters {summary['std_absorption_fraction']:.2f}; split latents per letter "
          f"{summary['mean_num_split_latents']:.2f}; main latent P {summary['mean_main_precision']:.2f} / "
          f"R {summary['mean_main_recall']:.2f} / F1 {summary['mean_main_f1']:.2f}; probe F1 {summary['mean_probe_f1']:.2f}")
    letters = db.sae_letters(sae_key)
    print(f"  test words: {int(letters.n_test.sum()):,}; best single neuron F1 {letters.neuron_f1.min():.2f}-"
          f"{letters.neuron_f1.max():.2f}; best PCA direction F1 {letters.pca_f1.min():.2f}-{letters.pca_f1.max():.2f}")
    for row in letters.itertuples():
        flag = "" if row.included else "  (excluded: probe F1 <= 0.6)"
        print(f"  {row.letter.upper()}: probe F1 {row.probe_f1:.2f} stability {row.probe_stability:.2f} fraction "
              f"{interval(row.mean_absorption_fraction, row.absorption_fraction_low, row.absorption_fraction_high)}{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--hook", default="blocks.6.hook_resid_post")
    parser.add_argument("--architecture", default="topk")
    parser.add_argument("--letters", metavar="SAE_KEY", default=None, help="print one SAE's per-letter numbers instead")
    args = parser.parse_args()
    if args.letters:
        print_letters(ExplorerDB(args.db), args.letters)
        return
    frame = ExplorerDB(args.db).sae_comparison().rename(columns=SHORT_NAMES)
    frame = frame.assign(l0=frame.l0.round(1), ev=frame.ev.round(3)).sort_values(["layer", "arch", "width", "l0"])
    print_table(frame)
    print_trends(frame, args.hook, args.architecture)


if __name__ == "__main__":
    main()
