"""The split-latent rule in a built database (default: the shipped demo): per SAE and task, the headline under the
database's rule and under the rule measured beside it, the method band, how many classes changed their split latents,
and in how many the class's main latent is outside the split latents under each rule; then how often the recorded
absorber of a word is its class's own main latent (the artefact the guarded rule removes).

    python bench/split_rule_report.py [--db assets/demo.duckdb]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract.vocabulary import method_band  # noqa: E402

HEADLINES = """
SELECT a.sae_key, a.task, a.n_letters, a.split_rule, a.other_rule,
       a.mean_absorption_fraction, a.mean_absorption_fraction_low, a.mean_absorption_fraction_high,
       a.other_absorption_fraction, a.other_absorption_fraction_low, a.other_absorption_fraction_high,
       a.full_absorption_rate, a.other_full_absorption_rate, a.n_rule_changed_letters,
       a.n_main_outside_split,
       (SELECT count(*) FROM sae_letters l WHERE l.sae_key = a.sae_key AND l.task = a.task AND l.included
          AND NOT list_contains(coalesce(l.other_split_latents, l.split_latents), l.main_latent)) AS other_outside
FROM sae_absorption a JOIN saes s USING (sae_key)
ORDER BY s.model_name, a.task <> 'first_letter', a.task, s.layer, s.d_sae, s.l0, a.sae_key"""

# Projection-metric words whose absorber is their class's own main latent, against all absorbed words, per task.
MAIN_AS_ABSORBER = """
SELECT w.task, count(*) FILTER (WHERE w.absorber = l.main_latent) AS own_main, count(*) AS absorbed
FROM absorption_words w JOIN sae_numbers n USING (sae_num)
JOIN sae_letters l ON l.sae_key = n.sae_key AND l.task = w.task AND l.letter = w.letter
WHERE w.metric = 'projection' GROUP BY w.task ORDER BY w.task <> 'first_letter', w.task"""


def fmt(value, low=None, high=None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" + ("" if low is None else f" [{low:.3f}, {high:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "demo.duckdb")
    args = parser.parse_args()
    con = duckdb.connect(str(args.db), read_only=True)
    print(f"{'SAE':30s} {'task':17s} {'n':>3s} | {'rule':8s} mean absorption fraction | {'other':8s} mean absorption "
          "fraction | method band | classes changed | main outside split (rule / other)")
    moves = []
    for r in con.execute(HEADLINES).fetchall():
        (key, task, n, rule, other, value, low, high, o_value, o_low, o_high, _full, _o_full, changed, outside,
         other_outside) = r
        band = method_band((low, high), (o_low, o_high))
        band_text = "—" if band is None else f"[{band[0]:.3f}, {band[1]:.3f}]"
        print(f"{key:30s} {task:17s} {n:3d} | {rule:8s} {fmt(value, low, high):24s} | {other or '—':8s} "
              f"{fmt(o_value, o_low, o_high):24s} | {band_text:16s} | {changed if changed is not None else '—':>3} | "
              f"{outside if outside is not None else '—'} / {other_outside}")
        if value is not None and o_value is not None:
            moves.append(abs(value - o_value))
    if moves:
        print(f"\nheadline move between the rules: median {sorted(moves)[len(moves) // 2]:.3f}, max {max(moves):.3f} "
              f"over {len(moves)} SAE x task")
    print("\nabsorbed words (projection metric) whose recorded absorber is their class's own main latent:")
    for task, own, absorbed in con.execute(MAIN_AS_ABSORBER).fetchall():
        print(f"  {task:17s} {own:6,d} of {absorbed:7,d} ({own / max(absorbed, 1):.1%})")


if __name__ == "__main__":
    main()
