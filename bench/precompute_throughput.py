"""Dashboard precompute throughput on the embedded SmolLM2 + a shipped SAE, against the floor.

The floor is one bare pass: model to the hook (`stop_at_layer`) plus SAE encode over the same
tokens. The dashboard precompute does that pass once for all latents and then builds every
dashboard from the sparse codes. Prints tokens/s for both and their ratio (target <= 1.5x).

    python bench/precompute_throughput.py [--sae assets/saes/NAME] [--rows 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.corpus import load_corpus_rows  # noqa: E402
from precompute.dashboards import DashboardConfig, encode_batch  # noqa: E402
from precompute.job import JobConfig, compute_sae_tables  # noqa: E402
from precompute.model_loading import load_model  # noqa: E402
from precompute.sae_loading import SAESpec, hook_layer, load_sae, sae_hook_name  # noqa: E402

PEER_SECONDS_ALL_LATENTS = 300.0  # SAEDashboard 0.8.0, same setting (from the issue): ~20 s per 256 latents


@torch.no_grad()
def bare_pass_seconds(model, sae, rows, batch_size: int) -> float:
    hook = sae_hook_name(sae)
    start = time.perf_counter()
    for i in range(0, len(rows), batch_size):
        batch = torch.from_numpy(rows[i : i + batch_size]).long()
        encode_batch(model, sae, hook, hook_layer(hook), batch, first_position=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sae", type=Path, default=Path("assets/saes/smollm2-l6-topk-4k-k32"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/smollm2-debian-128.parquet"))
    parser.add_argument("--rows", type=int, default=256, help="corpus rows (x128 tokens); 256 = 32,768 tokens")
    parser.add_argument("--first-row", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    model = load_model()
    spec = SAESpec(key=args.sae.name, path=args.sae)
    sae = load_sae(spec)
    rows = load_corpus_rows(args.corpus)[args.first_row : args.first_row + args.rows]
    n_tokens = rows.size

    bare_pass_seconds(model, sae, rows[: args.batch_size], args.batch_size)  # warm-up
    floor = bare_pass_seconds(model, sae, rows, args.batch_size)
    config = JobConfig(model_name="smollm2-135m-embedded", corpus_path=args.corpus,
                       corpus_rows=(args.first_row, args.first_row + args.rows), db_path=Path("/dev/null"),
                       dashboard=DashboardConfig(batch_size=args.batch_size))
    start = time.perf_counter()
    _, timing, _ = compute_sae_tables(spec, model, rows, config)
    total = time.perf_counter() - start

    print(f"SAE {args.sae.name}: {sae.cfg.d_sae} latents, {n_tokens:,} tokens ({args.rows} rows x {rows.shape[1]}), "
          f"{torch.get_num_threads()} threads")
    print(f"bare pass (model to hook + encode): {floor:7.1f} s  {n_tokens / floor:8.0f} tok/s")
    print(f"dashboard precompute, all latents:  {total:7.1f} s  {n_tokens / total:8.0f} tok/s "
          f"(pass {timing.pass_seconds:.1f} s + dashboards {timing.post_seconds:.1f} s)")
    print(f"ratio to the floor: {total / floor:.2f}x (target <= 1.5x); "
          f"vs SAEDashboard ~{PEER_SECONDS_ALL_LATENTS:.0f} s: {PEER_SECONDS_ALL_LATENTS / total:.1f}x faster")


if __name__ == "__main__":
    main()
