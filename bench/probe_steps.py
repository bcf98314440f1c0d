"""Why our letter probe is weaker than SAEBench's on small word samples: the number of Adam steps.

Our probe trained on batches of 4,096 words, SAEBench's on batches of 64, both for 50 epochs. On 3,000 words (2,400
training words a fold) that is 50 steps against about 1,900. Adam moves a weight by about one learning rate per step,
so after 50 decaying steps no weight can pass 0.077: the probe is stopped early. ProbeConfig now picks the batch per
sample (batch_size_for: at least 32 steps an epoch, batches of 64 to 4,096 words). This bench trains fold 0's probe
on the same words and activations with each batch size (0 = ProbeConfig's own choice) and prints the out-of-fold F1
over the 26 letters, and the letters above SAEBench's 0.6 inclusion cut-off.

    python bench/probe_steps.py [--words 3000] [--batch-sizes 4096 0 64] [--threads 1]
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

from contract.vocabulary import MIN_PROBE_F1  # noqa: E402
from precompute.absorption import probe as pr  # noqa: E402
from precompute.absorption.config import AbsorptionConfig  # noqa: E402
from precompute.absorption.hook import compute_hook_data  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402

HOOK, LAYER = "blocks.6.hook_resid_post", 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=3000, help="0: the whole vocabulary")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[4096, 0, 64], help="0: ProbeConfig.batch_size_for")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    config = AbsorptionConfig(max_words=args.words or None, run_ablation_metric=False)  # 0: whole vocabulary
    hook = compute_hook_data(load_model(), "smollm2-135m-embedded", HOOK, LAYER, config, log=lambda *_: None)
    labels = hook.prompts.labels
    train, test = hook.training_words(0), hook.fold_words(0)
    print(f"{len(hook.prompts):,} words at {HOOK}; fold 0: {len(train):,} training, {len(test):,} held-out words")
    for batch_size in args.batch_sizes:
        probe_config = config.probe if batch_size == 0 else dataclasses.replace(
            config.probe, batch_size=batch_size, min_batch_size=batch_size, min_steps_per_epoch=1)
        batch_size = probe_config.batch_size_for(len(train))
        steps = probe_config.epochs * -(-len(train) // batch_size)
        start = time.perf_counter()
        probe = pr.train_letter_probe(hook.acts[train], labels[train], probe_config)
        seconds = time.perf_counter() - start
        scores = pr.classifier_scores(probe.logits(hook.acts[test]) > 0, labels[test])
        print(f"batch {batch_size:5d}: {steps:5d} Adam steps, {seconds:5.1f} s; out-of-fold F1 mean {scores.f1.mean():.3f} "
              f"(median {np.median(scores.f1):.3f}); letters with F1 > {MIN_PROBE_F1}: {(scores.f1 > MIN_PROBE_F1).sum()}"
              f"; largest |weight| {np.abs(probe.weight).max():.3f}")


if __name__ == "__main__":
    main()
