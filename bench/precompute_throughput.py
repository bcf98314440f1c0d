"""Dashboard precompute throughput on the embedded SmolLM2 + a shipped SAE, against the floor.

The floor is one bare pass: model to the hook (`stop_at_layer`) plus SAE encode over the same
tokens, with the linears the precompute uses (packed for oneDNN: precompute/loading/packed.py; torch's own kernels,
which SAEDashboard runs, are timed beside it). The dashboard precompute does that pass once for all latents and then builds every
dashboard from the sparse codes. Prints tokens/s for both and their ratio (target <= 1.5x).

With --peer it then runs SAEDashboard 0.8.0 (in its own venv, bench/peers/.venv-saedashboard: run
`bash bench/peers/setup.sh saedashboard` once) on the same model, SAE, corpus rows and thread count, over
latents 0..--latents-1 (default: all, as our precompute), at its defaults (a model pass per 256 latents) and at its
best setting (`--minibatch-size-features` = all the latents: one pass), and prints the times, both ratios and what
each tool builds that the other does not.

    python bench/precompute_throughput.py [--sae assets/saes/NAME] [--rows 256]
    python bench/precompute_throughput.py --peer [--rows 256] [--latents 4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from thread_limits import cap_threads_from_argv  # noqa: E402  (bench/, the script's folder)

cap_threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.loading.corpus import load_corpus_rows  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402
from precompute.loading.packed import keep_freed_buffers, packed_linears  # noqa: E402
from precompute.loading.sae import SAESpec, load_sae, sae_hook_name  # noqa: E402
from precompute.pipeline.dashboards import DashboardConfig, encode_batch  # noqa: E402
from precompute.pipeline.job import JobConfig, compute_sae_tables  # noqa: E402

LOAD_AT_START = os.getloadavg()[0]  # the machine's 1-minute load average, printed with a peer comparison


@torch.no_grad()
def bare_pass_seconds(model, sae, rows, batch_size: int, packed: bool = True) -> float:
    """One pass, model to the hook and SAE encode, with our linears (packed for oneDNN, as the precompute runs them)
    or torch's own kernels (as SAEDashboard runs them)."""
    hook = sae_hook_name(sae)
    keep_freed_buffers()  # as the precompute's pass does
    start = time.perf_counter()
    with packed_linears(model, sae) if packed else contextlib.nullcontext():
        for i in range(0, len(rows), batch_size):
            batch = torch.from_numpy(rows[i : i + batch_size]).long()
            encode_batch(model, sae, hook, batch, first_position=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sae", type=Path, default=Path("assets/saes/smollm2-l6-topk-4k-k32"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/smollm2-debian-128.parquet"))
    parser.add_argument("--rows", type=int, default=256, help="corpus rows (x128 tokens); 256 = 32,768 tokens")
    parser.add_argument("--first-row", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads, ours and the peer's (default: torch's)")
    parser.add_argument("--peer", action="store_true", help="also run SAEDashboard 0.8.0 on the same inputs")
    parser.add_argument("--peer-defaults-only", action="store_true",
                        help="--peer: run SAEDashboard at its defaults only (not also at its one-pass best setting)")
    parser.add_argument("--latents", type=int, default=None,
                        help="--peer: SAEDashboard computes latents 0..N-1 (default: all); ours always computes all")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model = load_model()
    spec = SAESpec(key=args.sae.name, path=args.sae)
    sae = load_sae(spec)
    rows = load_corpus_rows(args.corpus)[args.first_row : args.first_row + args.rows]
    n_tokens = rows.size

    bare_pass_seconds(model, sae, rows[: args.batch_size], args.batch_size)  # warm-up
    floor = bare_pass_seconds(model, sae, rows, args.batch_size)
    torch_floor = bare_pass_seconds(model, sae, rows, args.batch_size, packed=False)
    config = JobConfig(model_name="smollm2-135m-embedded", corpus_path=args.corpus,
                       corpus_rows=(args.first_row, args.first_row + args.rows), db_path=Path("/dev/null"),
                       dashboard=DashboardConfig(batch_size=args.batch_size))
    start, cpu_start = time.perf_counter(), time.process_time()
    tables, timing, _ = compute_sae_tables(spec, model, rows, config)
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    print(f"SAE {args.sae.name}: {sae.cfg.d_sae} latents, {n_tokens:,} tokens ({args.rows} rows x {rows.shape[1]}), "
          f"{torch.get_num_threads()} threads")
    print(f"bare pass (model to hook + encode): {floor:7.1f} s  {n_tokens / floor:8.0f} tok/s (packed oneDNN linears, "
          f"as the precompute; torch's own kernels: {torch_floor:.1f} s)")
    print(f"dashboard precompute, all latents:  {total:7.1f} s  {n_tokens / total:8.0f} tok/s "
          f"(pass {timing.pass_seconds:.1f} s + dashboards {timing.post_seconds:.1f} s)")
    print(f"ratio to the floor: {total / floor:.2f}x (target <= 1.5x)")
    if args.peer:
        latents = tables["latents"]
        compare_with_saedashboard(args, rows, sae.cfg.d_sae, total, total_cpu, floor,
                                  latents.column("max_act").to_numpy(), latents.column("n_fired").to_numpy())


# What each tool builds that the other does not (read from both codes: precompute/pipeline/dashboards.py and
# SAEDashboard 0.8.0's feature_data_generator / data_writing_fns), printed with every peer comparison.
ONLY_SAEDASHBOARD = ("per-token hover logits on every example", "10 x 5 quantile-interval examples",
                     "neuron and feature correlation tables", "a logit histogram per latent")
ONLY_OURS = ("per-token tables for the token page (token_occurrences: where each token occurs; token_latents: the "
             "latents each vocabulary token fires; token_letters: the letter readings per token)",
             "per-latent labels from their top tokens (latent_labels)",
             "each latent's nearest latents by decoder cosine",
             "activation windows around every top example, stored for the pages (contexts, window_acts)")


def run_saedashboard(args, rows: np.ndarray, n_latents: int, threads: int, minibatch_features: int | None) -> dict:
    from bench.peers.bench_peer import run_peer

    with tempfile.TemporaryDirectory(prefix="peer-rows-") as tmp:
        tokens = Path(tmp) / "rows.npy"
        np.save(tokens, rows.astype(np.int64))
        extra = [] if minibatch_features is None else ["--minibatch-size-features", str(minibatch_features)]
        return run_peer("saedashboard", "run_saedashboard.py",
                        ["--sae", str(args.sae), "--tokens", str(tokens), "--latents", str(n_latents), "--bare-pass",
                         *extra], threads)


def compare_with_saedashboard(args, rows: np.ndarray, d_sae: int, ours: float, ours_cpu: float, floor: float,
                              our_max_act: np.ndarray, our_n_fired: np.ndarray) -> None:
    """SAEDashboard on the same rows, SAE, threads; latents 0..N-1: at its defaults (a model pass per 256 latents)
    and at its best setting (one pass over all the latents, what a user with the memory would set). Prints the
    times, both ratios, and how far the two tools' per-latent firing counts and max activations agree."""
    threads = torch.get_num_threads()
    n_latents = min(args.latents or d_sae, d_sae)
    load_before = os.getloadavg()[0]
    runs = {"defaults": run_saedashboard(args, rows, n_latents, threads, None)}
    if not args.peer_defaults_only:
        runs["best (one pass)"] = run_saedashboard(args, rows, n_latents, threads, n_latents)
    peer = runs["defaults"]
    versions = peer["versions"]
    print(f"\n== vs SAEDashboard {versions['sae-dashboard']} (transformer-lens {versions['transformer-lens']}), "
          f"same {peer['n_tokens']:,} tokens, SAE {peer['sae']}, {peer['threads']} threads (ours {threads}) ==")
    print(f"machine load average (1 min): {LOAD_AT_START:.1f} at the start, {load_before:.1f} when SAEDashboard "
          f"started, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
    print(f"ours, all {d_sae} latents: {ours:7.1f} s  {rows.size / ours:8.0f} tok/s  CPU {ours_cpu:7.1f} s "
          f"({ours / floor:.2f}x our bare pass of {floor:.1f} s)")
    scope = "same latents" if n_latents == d_sae else f"SAEDashboard {n_latents} latents, ours all {d_sae}"
    for name, run in runs.items():
        seconds, cpu = run["seconds"]["dashboards"], run["cpu_seconds"]["dashboards"]
        print(f"SAEDashboard at its {name}, latents 0..{n_latents - 1}: {seconds:7.1f} s  "
              f"{run['n_tokens'] / seconds:8.0f} tok/s  CPU {cpu:7.1f} s ({run['model_passes']} model passes; one "
              f"bare pass in its venv: {run['seconds']['bare_pass']:.1f} s)")
        print(f"  ratio SAEDashboard / ours ({scope}): {seconds / ours:.1f}x wall-clock, {cpu / ours_cpu:.1f}x CPU "
              f"time (targets: >= 20x at its defaults, >= 8x at its best, in CPU time)")
    peer_max = np.asarray(peer["sanity"]["max_act"], dtype=np.float64)
    peer_fired = np.asarray(peer["sanity"]["n_fired"], dtype=np.int64)
    mine_max, mine_fired = our_max_act[:n_latents].astype(np.float64), our_n_fired[:n_latents]
    live = (mine_fired > 0) | (peer_fired > 0)
    close = np.abs(peer_max - mine_max) <= 1e-3 + 1e-3 * np.abs(mine_max)
    print(f"sanity (latents 0..{n_latents - 1}, positions >= 1 in both): firing count identical for "
          f"{int((peer_fired == mine_fired).sum())}/{n_latents} latents (max |diff| {int(np.abs(peer_fired - mine_fired).max())}); "
          f"max activation within 0.1 % for {int((close & live).sum())}/{int(live.sum())} live latents "
          f"(max |diff| {np.abs(peer_max - mine_max).max():.1e}); dead in both: {int((~live).sum())}")
    print("only SAEDashboard builds: " + "; ".join(ONLY_SAEDASHBOARD))
    print("only ours builds: " + "; ".join(ONLY_OURS))
    print("SAEDashboard settings that differ from its defaults: " + "; ".join(peer["deviations"]))

if __name__ == "__main__":
    main()
