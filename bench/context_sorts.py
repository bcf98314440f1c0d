"""Seconds to pick every latent's top and quantile contexts (precompute/pipeline/dashboards.py) on random sparse
codes the size of a demo SAE's (260,096 tokens x k active latents), against the three-key lexsorts they replaced,
and whether both pick the same contexts; then one stable sort of their int64 key through torch (stable_order) and
through numpy. `--k 115 --d-sae 1024` is the demo's JumpReLU (30 M codes).

    python bench/context_sorts.py [--k 32] [--d-sae 4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.pipeline import dashboards as dash  # noqa: E402
from tests.precompute.pipeline.test_dashboards import lexsorted_quantile_order, lexsorted_top_contexts  # noqa: E402


def random_codes(n_rows: int, seq_len: int, d_sae: int, k: int, seed: int = 0) -> dash.SparseCodes:
    """k distinct active latents per token, in the collector's order (token, then latent)."""
    rng = np.random.default_rng(seed)
    n_tokens = n_rows * seq_len
    latent = np.sort(np.argsort(rng.random((n_tokens, d_sae)).astype(np.float32), axis=1)[:, :k], axis=1) \
        if d_sae * n_tokens <= 50_000_000 else np.sort(rng.integers(0, d_sae, size=(n_tokens, k)), axis=1)
    token_index = np.repeat(np.arange(n_tokens, dtype=np.int64), k)
    value = (rng.gamma(2.0, 1.0, size=n_tokens * k) + 1e-3).astype(np.float32)
    return dash.SparseCodes(token_index=token_index, latent=latent.reshape(-1).astype(np.int32), value=value,
                            n_rows=n_rows, seq_len=seq_len, n_tokens=n_tokens)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2032)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (the radix sort's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codes = random_codes(args.rows, args.seq_len, args.d_sae, args.k)
    stats = dash.latent_stats(codes, args.d_sae, 8)
    print(f"{len(codes.value):,} codes ({args.rows * args.seq_len:,} tokens x k = {args.k}, {args.d_sae:,} latents)")
    refs, top_new = timed(lambda: dash.top_contexts(codes, n_top=20))
    (keep, _), top_old = timed(lambda: lexsorted_top_contexts(codes, n_top=20))
    quantile, quantile_new = timed(lambda: dash.quantile_contexts(codes, stats.max_act, 10, 5, 0))
    expected, quantile_old = timed(lambda: lexsorted_quantile_order(codes, stats.max_act, 10, 5, 0))
    same_top = np.array_equal(refs.token_index, codes.token_index[keep]) and np.array_equal(refs.latent, codes.latent[keep])
    same_quantile = sorted(zip(quantile.latent.tolist(), quantile.token_index.tolist())) == \
        sorted(zip(codes.latent[expected].tolist(), codes.token_index[expected].tolist()))
    print(f"top contexts:      {top_new:6.2f} s (three-key lexsorts {top_old:6.2f} s); same contexts: {same_top}")
    print(f"quantile contexts: {quantile_new:6.2f} s (two-key lexsort   {quantile_old:6.2f} s); same contexts: "
          f"{same_quantile}")
    # the one int64 key top_contexts sorts first: (latent, row) then descending value
    row = codes.token_index // codes.seq_len
    key = dash.sort_key(codes.latent.astype(np.int64) * codes.n_rows + row, args.d_sae * codes.n_rows,
                        dash.descending_bits(codes.value), 31)
    radix, radix_s = timed(lambda: dash.stable_order(key))
    numpy_stable, numpy_s = timed(lambda: np.argsort(key, kind="stable"))
    print(f"one stable sort of {len(key):,} int64 keys: {radix_s:6.2f} s through torch's radix sort (stable_order), "
          f"{numpy_s:6.2f} s numpy's stable argsort; the same permutation: {np.array_equal(radix, numpy_stable)}")


if __name__ == "__main__":
    main()
