"""Projection absorption metric against ground truth, on toy SAEs (sae-lens synthetic data).

For each seed x L1 coefficient x world (hierarchy: parent with 3 mutually exclusive children;
control: same features and rates, independent), trains a 24-latent ReLU/L1 SAE on 24 features in
d_model 48 (tests/precompute/absorption/toy.py), then runs the SAEBench projection metric with the
true parent direction as probe on the samples where the parent fires. Ground truth per sample: a
child fired. "flag" = absorption_fraction > 0 or full absorption.

Columns: silence = parent-latent mean activation on child samples / on parent-only samples;
dec_cos = mean cos(child latent decoder, parent direction); rate = flagged share of parent samples;
prec / rec = the flag against "a child fired" (prec "-" when nothing is flagged); full_rec = recall
of full absorption alone; frac = mean absorption fraction on child samples. In the control world
the SAE does not absorb, so rate ~ 0 and rec ~ 0 are the right answers.

    python bench/toy_absorption.py [--seeds 0 1 2] [--l1 0.03 0.1 0.3] [--steps 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # train_toy_sae's progress bar
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tests.precompute.absorption.toy import SAESpec, ToyDetection, detect_on_toy, make_toy  # noqa: E402


def row(world: str, l1: float, seed: int, d: ToyDetection) -> dict:
    child = d.child_fired
    return {
        "world": world, "l1": l1, "seed": seed,
        "silence": d.parent_latent_silence_ratio,
        "dec_cos": float(d.child_decoder_parent_cos.mean()),
        "rate": d.flagged_rate,
        "prec": d.precision if d.flagged.any() else float("nan"),
        "rec": d.recall,
        "full_rec": float(d.result.is_full_absorption[child].mean()),
        "frac": float(d.result.absorption_fraction[child].mean()),
    }


def fmt(r: dict, seed: str | None = None) -> str:
    prec = "    -" if np.isnan(r["prec"]) else f"{r['prec']:5.2f}"
    return (f"{r['world']:<9} {r['l1']:>5} {seed if seed is not None else r['seed']:>4} {r['silence']:8.3f} "
            f"{r['dec_cos']:7.3f} {r['rate']:5.2f} {prec} {r['rec']:5.2f} {r['full_rec']:8.2f} {r['frac']:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--l1", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    parser.add_argument("--steps", type=int, default=1000, help="training steps of 1024 samples")
    parser.add_argument("--n", type=int, default=8000, help="evaluation samples (about a quarter have the parent)")
    args = parser.parse_args()

    start = time.perf_counter()
    rows = []
    header = f"{'world':<9} {'l1':>5} {'seed':>4} {'silence':>8} {'dec_cos':>7} {'rate':>5} {'prec':>5} {'rec':>5} {'full_rec':>8} {'frac':>5}"
    print(header)
    for l1 in args.l1:
        for world in ("hierarchy", "control"):
            for seed in args.seeds:
                toy = make_toy(hierarchy=world == "hierarchy", seed=seed,
                               sae_spec=SAESpec(l1_coefficient=l1, training_samples=1024 * args.steps))
                rows.append(row(world, l1, seed, detect_on_toy(toy, n=args.n)))
                print(fmt(rows[-1]), flush=True)

    print("\nmean over seeds")
    print(header)
    for l1 in args.l1:
        for world in ("hierarchy", "control"):
            group = [r for r in rows if r["l1"] == l1 and r["world"] == world]
            mean = {k: (float(np.nanmean([r[k] for r in group])) if not all(np.isnan(r[k]) for r in group) else float("nan"))
                    for k in ("silence", "dec_cos", "rate", "prec", "rec", "full_rec", "frac")}
            print(fmt({"world": world, "l1": l1, **mean}, seed="all"))
    print(f"\n{len(rows)} SAEs in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
