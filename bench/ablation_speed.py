"""The paper's ablation metric (integrated-gradients ablation, precompute/absorption/ablation.py), timed two ways on
the same candidate words of one SAE: as first written (`spliced_attributions`: the SAE spliced into the whole model
for every alpha step, full logits, the prefix's keys and values rebuilt per batch of 8) and as the build runs it now
(`ablation_attributions`: the model runs to the hook once per word, only the later blocks run per alpha step, the 26
answers' logits alone, one prefix cache per prefix, batches of 32). Prints both times, seconds per word, the
largest attribution difference and whether every verdict is the same, and the time the demo's build stored for the SAE
scaled by the speed-up.

    python bench/ablation_speed.py [--words 3000] [--threads 2] [--sae assets/saes/smollm2-l6-topk-4k-k32]
    python bench/ablation_speed.py --words 0 --candidates 10   # the demo's settings: whole vocabulary, 10 a letter
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from thread_limits import cap_threads_from_argv  # noqa: E402  (bench/, the script's folder)

cap_threads_from_argv()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from stage_inputs import stage_inputs  # noqa: E402  (bench/)

from precompute.absorption import ablation as abl  # noqa: E402
from precompute.absorption import paper  # noqa: E402
from precompute.absorption.config import AbsorptionConfig  # noqa: E402
from precompute.absorption.measure import compute_sae_absorption  # noqa: E402

FIRST_BATCH_SIZE = 8  # AblationMetricConfig.batch_size as first written


def first_implementation(model, sae, hook_name, prefix_ids, suffixes, correct, letter_ids, config, cache=None):
    """ablation_attributions as first written (the cache argument is ignored: it rebuilt the prefix per batch)."""
    return abl.spliced_attributions(model, sae, hook_name, prefix_ids, suffixes, correct, letter_ids, config)


def timed_paper_metric(model, sae, hook, config: AbsorptionConfig):
    cpu, start = time.process_time(), time.perf_counter()
    result = compute_sae_absorption("bench", sae, model, hook, config, log=lambda *_: None)
    return result, time.perf_counter() - start, time.process_time() - cpu


def verdicts(result) -> tuple[np.ndarray, np.ndarray]:
    """Every sampled word's verdict and top attribution, in a fixed order."""
    flags = [f.paper.is_absorption for letter in result.letters for f in letter.folds if f.paper is not None]
    tops = [f.paper.top_attributions[:, 0] for letter in result.letters for f in letter.folds if f.paper is not None]
    return np.concatenate(flags), np.concatenate(tops)


def demo_stored_seconds(sae_name: str) -> float | None:
    """The paper metric's seconds the demo database's build stored for this SAE's first letters (None without it)."""
    import json

    from backend.database import DEFAULT_DB_PATH

    if not DEFAULT_DB_PATH.exists():
        return None
    import duckdb

    with duckdb.connect(str(DEFAULT_DB_PATH), read_only=True) as db:
        row = db.execute("SELECT seconds FROM sae_absorption WHERE sae_key = ? AND task = 'first_letter'",
                         [sae_name]).fetchone()
    return json.loads(row[0]).get("ablation") if row else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=3000, help="sampled words (0: the whole vocabulary)")
    parser.add_argument("--sae", default="assets/saes/smollm2-l6-topk-4k-k32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=None,
                        help="candidate words per letter (AblationMetricConfig.max_candidates; the demo's build: 10)")
    args = parser.parse_args()
    model, sae, config, hook = stage_inputs(args.sae, args.words or None, run_ablation_metric=True)
    if args.candidates:
        config = dataclasses.replace(config, ablation=dataclasses.replace(config.ablation, max_candidates=args.candidates))
    now, now_s, now_cpu = timed_paper_metric(model, sae, hook, config)
    current = abl.ablation_attributions
    paper.abl.ablation_attributions = first_implementation
    try:
        first_config = dataclasses.replace(config, ablation=dataclasses.replace(config.ablation,
                                                                                batch_size=FIRST_BATCH_SIZE))
        before, before_s, before_cpu = timed_paper_metric(model, sae, hook, first_config)
    finally:
        paper.abl.ablation_attributions = current
    n = sum(letter.n_sampled for letter in now.letters)
    flags_now, top_now = verdicts(now)
    flags_before, top_before = verdicts(before)
    print(f"candidate words sampled: {n:,}")
    print(f"first implementation: {before.seconds['ablation']:.1f} s ({before.seconds['ablation'] / n:.3f} s/word)")
    print(f"now:                  {now.seconds['ablation']:.1f} s ({now.seconds['ablation'] / n:.3f} s/word): "
          f"{before.seconds['ablation'] / now.seconds['ablation']:.1f}x faster")
    print(f"verdicts identical: {bool((flags_now == flags_before).all())} ({int(flags_now.sum())} absorbed of "
          f"{len(flags_now)}); largest top-attribution difference {np.abs(top_now - top_before).max():.2e} "
          f"(of values up to {np.abs(top_before).max():.2f}); paper rate {now.paper_rate[1].value:.4f} vs "
          f"{before.paper_rate[1].value:.4f}")
    demo = demo_stored_seconds(Path(args.sae).name)
    if demo:
        speedup = before.seconds["ablation"] / now.seconds["ablation"]
        print(f"the demo's build stored {demo:.0f} s for this SAE's first letters (the first implementation, whole "
              f"vocabulary); at this speed-up about {demo / speedup:.0f} s (the target: <= 60 s per SAE)")

if __name__ == "__main__":
    main()
