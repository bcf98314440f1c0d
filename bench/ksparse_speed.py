"""The per-SAE k-sparse stage (L1 probe per fold, k-sparse fits under both split rules, main latents, projection
metric: `seconds["k_sparse"]` of precompute/absorption/measure.py) timed three ways on the same words and hook data:
the L1 probe's batches as torch COO tensors, one fold after the other (as first written); as CSR tensors with their
transpose for the backward (precompute/absorption/probe.py, CsrRowsTimesWeight), one fold after the other; and so,
with the folds in threads (now: measure.measure_folds). Prints the times, CPU time, and whether the headline numbers
and every fold's split latents are identical.

    python bench/ksparse_speed.py [--words N (default: the whole vocabulary)] [--threads 2]
                                  [--sae assets/saes/smollm2-l6-topk-4k-k32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from thread_limits import cap_threads_from_argv  # noqa: E402  (bench/, the script's folder)

cap_threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from stage_inputs import stage_inputs  # noqa: E402  (bench/)

from precompute.absorption import measure  # noqa: E402
from precompute.absorption import probe as pr  # noqa: E402
from precompute.absorption.config import AbsorptionConfig  # noqa: E402
from precompute.absorption.measure import compute_sae_absorption  # noqa: E402


def coo_logits(matrix, rows: np.ndarray, layer: torch.nn.Linear) -> torch.Tensor:
    """The first implementation: a batch's rows as a torch COO tensor, through torch.sparse.mm."""
    picked = matrix[rows].tocoo()
    indices = torch.from_numpy(np.vstack([picked.row, picked.col]).astype(np.int64))
    coo = torch.sparse_coo_tensor(indices, torch.from_numpy(picked.data), picked.shape, check_invariants=False,
                                  is_coalesced=True)
    return torch.sparse.mm(coo, layer.weight.T) + layer.bias


def timed(sae, hook, config: AbsorptionConfig):
    start, cpu = time.perf_counter(), time.process_time()
    result = compute_sae_absorption("bench", sae, None, hook, config, log=lambda *_: None)
    return result, time.perf_counter() - start, time.process_time() - cpu


def summary(result) -> tuple:
    return (result.fraction[1].value, result.full[1].value,
            [[tuple(f.split.split_latents) for f in letter.folds] for letter in result.letters])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=None)
    parser.add_argument("--sae", default="assets/saes/smollm2-l6-topk-4k-k32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model, sae, config, hook = stage_inputs(args.sae, args.words, run_ablation_metric=False)
    now, now_s, now_cpu = timed(sae, hook, config)
    measure.FOLD_WORKERS = 1
    try:
        serial, serial_s, serial_cpu = timed(sae, hook, config)
        current = pr.sparse_logits
        pr.sparse_logits = coo_logits
        try:
            before, before_s, before_cpu = timed(sae, hook, config)
        finally:
            pr.sparse_logits = current
    finally:
        measure.FOLD_WORKERS = None
    print(f"k-sparse stage, COO batches, one fold at a time (first implementation): {before.seconds['k_sparse']:.1f} s "
          f"(whole per-SAE step {before_s:.1f} s wall, {before_cpu:.1f} s CPU)")
    print(f"k-sparse stage, CSR batches and transposes, one fold at a time:         {serial.seconds['k_sparse']:.1f} s "
          f"(whole per-SAE step {serial_s:.1f} s wall, {serial_cpu:.1f} s CPU)")
    print(f"k-sparse stage, CSR batches, folds in threads (now):                    {now.seconds['k_sparse']:.1f} s "
          f"(whole per-SAE step {now_s:.1f} s wall, {now_cpu:.1f} s CPU; target <= 20 s per SAE and task)")
    same = summary(now) == summary(serial) == summary(before)
    print(f"identical headline numbers and split latents of every fold, all three: {same} (mean absorption fraction "
          f"{now.fraction[1].value:.6f} / {serial.fraction[1].value:.6f} / {before.fraction[1].value:.6f}, full "
          f"absorption {now.full[1].value:.6f} / {serial.full[1].value:.6f} / {before.full[1].value:.6f})")


if __name__ == "__main__":
    main()
