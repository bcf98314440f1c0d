"""The CPU kernels under the precompute's model passes, measured one change at a time on the embedded model:
- fp32 linear layers at SmolLM2's shapes: torch's own `F.linear` (MKL) against oneDNN with the weight packed once
  (precompute/loading/packed.py), in GFLOP/s;
- two cached-prefix batches as the absorption stage runs them (word activations: 128 one-token words after an
  81-token prefix, up to layer 7; the model check: 64 words x 6 tokens, all 30 layers), with torch's kernels, then
  the packed linears, then glibc kept from returning freed buffers (keep_freed_buffers: process-wide, so last but
  one), then the shared-prefix attention (precompute/absorption/prefix_attention.py).

    python bench/packed_linear.py [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from thread_limits import cap_threads_from_argv  # noqa: E402  (bench/, the script's folder)

cap_threads_from_argv()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.absorption.activations import expanded, prefix_cache  # noqa: E402
from precompute.absorption.prefix_attention import shared_prefix_attention  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402
from precompute.loading.packed import keep_freed_buffers, onednn_linear, pack, packed_linears  # noqa: E402

SHAPES = [(1, 576, 1536), (128, 576, 576), (384, 576, 1536), (384, 1536, 576), (4096, 576, 1536), (4096, 576, 4096)]


def seconds(fn, runs: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def linear_rates() -> None:
    print("rows x in -> out        torch F.linear   oneDNN packed   (GFLOP/s)")
    for rows, d_in, d_out in SHAPES:
        x, w, b = torch.randn(rows, d_in), torch.randn(d_out, d_in), torch.randn(d_out)
        packed = pack(w)
        flops = 2 * rows * d_in * d_out
        runs = max(3, min(200, int(2e10 // flops)))
        plain = flops / seconds(lambda: F.linear(x, w, b), runs) / 1e9
        fast = flops / seconds(lambda: onednn_linear(x, packed, b), runs) / 1e9
        print(f"{rows:>5} x {d_in:>4} -> {d_out:>4}   {plain:14.0f}   {fast:13.0f}")


def prefix_batches(model) -> None:
    prefix = list(range(1000, 1081))
    words = torch.randint(1000, 20000, (128, 1))
    checked = torch.randint(1000, 20000, (64, 6))
    to_hook, whole = prefix_cache(model, prefix, 7), prefix_cache(model, prefix, None)

    def activations():
        model(words, past_kv_cache=expanded(to_hook, len(words)), attention_mask=torch.ones_like(words),
              stop_at_layer=7)

    def model_check():
        model(checked, past_kv_cache=expanded(whole, len(checked)), attention_mask=torch.ones_like(checked),
              stop_at_layer=model.cfg.n_layers)

    steps = [("torch's kernels", contextlib.nullcontext, False), ("packed linears", lambda: packed_linears(model), False),
             ("+ freed buffers kept", lambda: packed_linears(model), True),
             ("+ shared-prefix attention", lambda: contextlib.ExitStack(), True)]
    print("\ncached-prefix batch            word activations   model check   (seconds per batch, median of 5)")
    for name, context, keep in steps:
        if keep:
            keep_freed_buffers()
        with torch.no_grad(), context() as stack:
            if name.startswith("+ shared"):
                stack.enter_context(packed_linears(model))
                stack.enter_context(shared_prefix_attention(model))
            times = [sorted(seconds(fn, 1) for _ in range(5))[2] for fn in (activations, model_check)]
        print(f"{name:28s}   {times[0]:16.3f}   {times[1]:11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} torch threads")
    linear_rates()
    prefix_batches(load_model())


if __name__ == "__main__":
    main()
