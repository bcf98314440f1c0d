"""Seconds for the absorption precompute on the embedded model: the shared per-hook work (prompts,
model passes, probe, model check, baselines) and the per-SAE work (encode, k-sparse probing,
projection metric; the paper's ablation metric separately), against the issue's targets
(<= 100 s for the first SAE at a hook, <= 21 s for each further SAE).

With --peer it then runs SAEBench 0.6.0's absorption eval (in its own venv, bench/peers/.venv-saebench:
run `bash bench/peers/setup.sh saebench` once) on the same model, SAE, words, seed and thread count, and
prints both times, their ratio and both tools' headline metrics.

    python bench/absorption_eval.py                      # 20,000 words, shared prefixes
    python bench/absorption_eval.py --compare-fresh 6000 # also: shared vs fresh prefixes on 6,000 words
    python bench/absorption_eval.py --peer --words 5000 --no-ablation  # vs SAEBench on the same 5,000 words
    python bench/absorption_eval.py --peer --protocol saebench --words 5000 --seed 42 --threads 1
        # SAEBench's own protocol with our activations (python -m precompute saebench) vs SAEBench's driver on the
        # same words and seed: per-letter table (docs/saebench_parity.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from precompute.absorption.config import AbsorptionConfig  # noqa: E402
from precompute.absorption.hook import compute_hook_data, select_words  # noqa: E402
from precompute.absorption.measure import compute_sae_absorption  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402
from precompute.loading.sae import SAESpec, hook_layer, load_sae, sae_hook_name  # noqa: E402

SAE_PATH = "assets/saes/smollm2-l6-topk-4k-k32"
LOAD_AT_START = os.getloadavg()[0]  # the machine's 1-minute load average, printed with a peer comparison


CPU: dict[str, float] = {}  # this process's CPU seconds (all threads) for the spans timed_run / report_speed time


def timed_run(model, sae, config: AbsorptionConfig, quiet=lambda *_: None):
    start, cpu = time.perf_counter(), time.process_time()
    hook_name = sae_hook_name(sae)
    hook = compute_hook_data(model, "smollm2-135m-embedded", hook_name, hook_layer(hook_name), config, log=quiet)
    shared = time.perf_counter() - start
    CPU["shared"] = time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    no_ablation = dataclasses.replace(config, run_ablation_metric=False)
    result = compute_sae_absorption("bench", sae, model, hook, no_ablation, log=quiet)
    per_sae = time.perf_counter() - start
    CPU["per_sae"] = time.process_time() - cpu
    return hook, result, shared, per_sae


def report_speed(model, sae, config: AbsorptionConfig, ablation: bool) -> dict:
    words = config.max_words
    hook, result, shared, per_sae = timed_run(model, sae, config)
    start, cpu = time.perf_counter(), time.process_time()
    again = compute_sae_absorption("bench", sae, model, hook, dataclasses.replace(config, run_ablation_metric=False),
                                   log=lambda *_: None)
    further = time.perf_counter() - start
    CPU["further"] = time.process_time() - cpu
    print(f"\n== absorption precompute, {len(hook.prompts):,} words ({len(hook.measured):,} measured, {config.split_mode}, "
          f"{config.fold_count} fold(s); "
          f"{f'{words:,}' if words else 'all'} sampled with seed {config.prompts.seed}), "
          f"{torch.get_num_threads()} threads ==")
    print("shared per-hook work: " + ", ".join(f"{k} {v:.1f}s" for k, v in hook.seconds.items()) + f"  = {shared:.1f}s")
    print("per-SAE work:         " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items() if k != "ablation")
          + f"  = {per_sae:.1f}s")
    first = shared + per_sae
    print(f"first SAE at the hook: {first:.1f}s (target <= 100 s: {'met' if first <= 100 else 'NOT met'}); "
          f"each further SAE: {further:.1f}s (target <= 21 s: {'met' if further <= 21 else 'NOT met'})")
    f, full = again.fraction[1], again.full[1]
    print(f"mean absorption fraction {f.value:.3f} [{f.low:.3f}, {f.high:.3f}], full-absorption rate {full.value:.3f} "
          f"[{full.low:.3f}, {full.high:.3f}] over {len(again.included_letters)} letters")
    if ablation:
        start = time.perf_counter()
        paper = compute_sae_absorption("bench", sae, model, hook, config, log=lambda *_: None)
        n = sum(letter.n_sampled for letter in paper.letters)
        print(f"paper ablation metric (extra, not in SAEBench): {paper.seconds['ablation']:.1f}s for {n} candidate words "
              f"({paper.seconds['ablation'] / max(n, 1):.2f} s/word); rate {paper.paper_rate[1].value:.3f} "
              f"[{paper.paper_rate[1].low:.3f}, {paper.paper_rate[1].high:.3f}]")
    return {"hook": hook, "result": again, "shared": shared, "per_sae": per_sae, "first": first, "further": further}


def compare_with_saebench(model, sae, sae_path: str, config: AbsorptionConfig, ours: dict, threads: int,
                          llm_batch_size: int | None) -> None:
    """SAEBench's absorption eval on the same words (the seeded sample our precompute uses), seed and
    threads. Prints both times, the ratios and both tools' headline metrics."""
    from bench.peers.bench_peer import run_peer

    train, test = select_words(model.tokenizer, config)
    words = sorted({(w.token_id, w.text) for w in train + test})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="peer-words-") as tmp:
        path = Path(tmp) / "words.json"
        path.write_text(json.dumps(words))
        args = ["--sae", sae_path, "--words", str(path), "--seed", str(config.prompts.seed)]
        if llm_batch_size:
            args += ["--llm-batch-size", str(llm_batch_size)]
        peer = run_peer("saebench", "run_saebench_absorption.py", args, threads)
    s, r = peer["seconds"], peer["results"]
    hook, result = ours["hook"], ours["result"]
    print(f"\n== vs SAEBench {peer['versions']['sae-bench']} absorption eval (transformer-lens "
          f"{peer['versions']['transformer-lens']}), same {peer['n_words']:,} words, seed {peer['seed']}, "
          f"SAE {peer['sae']}, {peer['threads']} threads (ours {threads}) ==")
    print(f"machine load average (1 min): {LOAD_AT_START:.1f} at the start, {load_before:.1f} when SAEBench started, "
          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
    print(f"SAEBench: prompts {s['prompts']:.1f}s, probe activations {s['probe_activations']:.1f}s, probe training "
          f"{s['probe_training']:.1f}s, k-sparse probing {s['k_sparse_probing']:.1f}s, absorption "
          f"{s.get('absorption', 0.0):.1f}s  = {s['eval_total']:.1f}s ({peer['n_train']:,} train / {peer['n_test']:,} "
          f"test words; prompts {peer['checks']['prompt_lengths'][0]} tokens)")
    c = peer["cpu_seconds"]
    extras = sum(hook.seconds.get(k, 0.0) for k in ("probe_stability", "model_check", "baselines"))
    first_cpu = CPU["shared"] + CPU["per_sae"]
    print(f"          CPU time: probe activations {c['probe_activations']:.1f}s, k-sparse probing "
          f"{c['k_sparse_probing']:.1f}s, absorption {c.get('absorption', 0.0):.1f}s, all {c['eval_total']:.1f}s")
    print(f"ours:     first SAE at the hook {ours['first']:.1f}s (shared {ours['shared']:.1f}s + per SAE "
          f"{ours['per_sae']:.1f}s; {extras:.1f}s of it is work SAEBench does not do: probe stability, model check, "
          f"baselines), each further SAE {ours['further']:.1f}s; CPU time: first SAE {first_cpu:.1f}s, each further "
          f"SAE {CPU['further']:.1f}s")
    if peer["stopped"]:
        print(peer["stopped"] + ": no ratio")
    else:
        per_sae, per_sae_cpu = s["k_sparse_probing"] + s["absorption"], c["k_sparse_probing"] + c["absorption"]
        print(f"ratio SAEBench / ours, first SAE: {s['eval_total'] / ours['first']:.1f}x wall-clock "
              f"({s['eval_total'] / (ours['first'] - extras):.1f}x against ours without those extras), "
              f"{c['eval_total'] / first_cpu:.1f}x CPU time")
        print(f"ratio SAEBench / ours, each further SAE at the hook (SAEBench reuses its probe, reruns k-sparse "
              f"probing and the absorption step's model passes: {per_sae:.1f}s): {per_sae / ours['further']:.1f}x "
              f"wall-clock, {per_sae_cpu / CPU['further']:.1f}x CPU time")
    included = set(result.included_letters)
    split = [len(letter.split_latents) for letter in result.letters if letter.letter in included]
    f, full = result.fraction[1], result.full[1]
    if "mean_absorption_fraction" in r:
        print(f"sanity, SAEBench: mean absorption fraction {r['mean_absorption_fraction']:.3f}, full absorption "
              f"{r['mean_full_absorption']:.3f}, split latents {r['mean_num_split_features']:.2f}, over "
              f"{r['n_letters']} letters; probe F1 {r['mean_probe_f1_all_letters']:.3f} (mean of 26)")
    print(f"sanity, ours:     mean absorption fraction {f.value:.3f} [{f.low:.3f}, {f.high:.3f}], full absorption "
          f"{full.value:.3f} [{full.low:.3f}, {full.high:.3f}], split latents {np.mean(split):.2f}, over "
          f"{len(included)} letters; probe F1 {hook.test_scores.f1.mean():.3f} (mean of 26)")
    print("SAEBench settings that differ from its defaults: " + "; ".join(peer["deviations"]))


def run_protocol(sae_path: str, words_file: Path, seed: int, threads: int, batch_size: int) -> dict:
    """`python -m precompute.absorption.saebench_protocol` in the SAEBench peer venv (where sae-bench imports):
    its summary JSON (last stdout line), with the eval output's path and `wall_seconds`."""
    import subprocess

    from bench.peers.bench_peer import peer_python

    repo = Path(__file__).resolve().parent.parent
    out = words_file.with_name("protocol_eval_output.json")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.pop("PYTHONPATH", None)
    command = [str(peer_python("saebench")), "-m", "precompute.absorption.saebench_protocol", "--sae", sae_path,
               "--words-file", str(words_file), "--seed", str(seed), "--threads", str(threads),
               "--batch-size", str(batch_size), "--out", str(out)]
    print(f"\n$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=repo, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"the protocol run failed (exit code {completed.returncode})")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["eval_output_path"] = str(out) if out.exists() else None
    return result


def saebench_split_latents(workdir: Path, sae_name: str) -> dict[str, list[int]]:
    """The split latents SAEBench used for each letter with probe true positives (its absorption step's table)."""
    import pandas as pd

    found = list((workdir / "results" / "feature_absorption" / sae_name).glob("*.parquet"))
    if not found:
        return {}
    raw = pd.read_parquet(found[0])
    return {letter: [int(i) for i in group["split_feats"].iloc[0]] for letter, group in raw.groupby("letter")}


def compare_protocol(tokenizer, sae_path: str, words: int, seed: int, threads: int, batch_size: int) -> None:
    """--peer --protocol saebench: our SAEBench-protocol mode and SAEBench's driver (its ICL vocabulary sorted, as
    ours: bench/peers/run_saebench_sorted_vocab.py) on the same words and seed, one after the other."""
    from bench.peers.bench_peer import run_peer
    from precompute.absorption.saebench_protocol import saebench_alpha_words

    sample = saebench_alpha_words(tokenizer, words or None, seed)
    with tempfile.TemporaryDirectory(prefix="protocol-words-") as tmp:
        words_file, workdir = Path(tmp) / "words.json", Path(tmp) / "saebench"
        words_file.write_text(json.dumps(sample))
        ours = run_protocol(sae_path, words_file, seed, threads, batch_size)
        valid = ours["eval_output_path"] is not None
        peer = run_peer("saebench", "run_saebench_sorted_vocab.py",
                        ["--sae", sae_path, "--words", str(words_file), "--seed", str(seed), "--workdir", str(workdir)],
                        threads)
        peer_split = saebench_split_latents(workdir, f"local_{Path(sae_path).name}")
    r = peer["results"]
    theirs = r.get("per_letter", {})
    mine = {row["letter"]: row for row in ours["letters"]}
    print(f"\n== SAEBench protocol (python -m precompute saebench, our activations) vs SAEBench "
          f"{peer['versions']['sae-bench']} driver: SAE {Path(sae_path).name}, {len(sample):,} words of SAEBench's "
          f"alphabetic vocabulary drawn with seed {seed}, eval seed {seed}, {threads} thread(s) each ==")
    print(f"{'letter':>6} {'ours':>7} {'SAEBench':>8} {'|diff|':>7} {'full ours':>9} {'full SB':>7} "
          f"{'F1 ours':>7} {'F1 SB':>6}  split latents ours / SAEBench")
    diffs = []
    for letter in "abcdefghijklmnopqrstuvwxyz":
        row, other = mine[letter], theirs.get(letter)
        ours_value = row["mean_absorption_fraction"] if row["included"] else None
        their_value = other["mean_absorption_fraction"] if other else None
        if ours_value is None and their_value is None:
            diff = None
        elif ours_value is None or their_value is None:
            diff = float("inf")  # included by one only
        else:
            diff = abs(ours_value - their_value)
            diffs.append(max(diff, abs(row["full_absorption_rate"] - other["full_absorption_rate"])))
        fmt = lambda v: "     -" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{letter:>6} {fmt(ours_value):>7} {fmt(their_value):>8} {fmt(diff):>7} "
              f"{fmt(row['full_absorption_rate'] if row['included'] else None):>9} "
              f"{fmt(other['full_absorption_rate'] if other else None):>7} {row['probe_f1']:7.3f} "
              f"{other['probe_f1'] if other else float('nan'):6.3f}  {row['split_latents']} / "
              f"{peer_split.get(letter, '-')}")
        if diff == float("inf"):
            diffs.append(diff)
    headline = [("mean absorption fraction", ours["mean_absorption_fraction"], r.get("mean_absorption_fraction")),
                ("mean full absorption", ours["mean_full_absorption"], r.get("mean_full_absorption")),
                ("mean split latents", ours["mean_num_split_features"], r.get("mean_num_split_features"))]
    for name, a, b in headline:
        print(f"{name}: ours {a}, SAEBench {b}" + (f", |diff| {abs(a - b):.2e}" if a is not None and b is not None
                                                    else ""))
    print(f"letters included: ours {ours['n_letters']}, SAEBench {r.get('n_letters')}; max |diff| over per-letter "
          f"absorption fraction and full-absorption rate: {max(diffs) if diffs else float('nan'):.2e}")
    print(f"our result JSON {'validated' if valid else 'NOT written'} with SAEBench's own AbsorptionEvalOutput model")
    s, o = peer["seconds"], ours["seconds"]
    print(f"time, ours:     probe activations {o['probe_activations']:.1f}s, probe training {o['probe_training']:.1f}s, "
          f"k-sparse {o['k_sparse_probing']:.1f}s, absorption {o.get('absorption', 0.0):.1f}s  = {o['eval_total']:.1f}s "
          f"(model passes {o.get('model_passes', 0.0):.1f}s of it; process {ours['wall_seconds']:.1f}s with loading)")
    print(f"time, SAEBench: probe activations {s['probe_activations']:.1f}s, probe training {s['probe_training']:.1f}s, "
          f"k-sparse {s['k_sparse_probing']:.1f}s, absorption {s.get('absorption', 0.0):.1f}s  = {s['eval_total']:.1f}s "
          f"(process {peer['wall_seconds']:.1f}s with loading)")
    print(f"machine load average (1 min): {LOAD_AT_START:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
          f"({os.cpu_count()} CPUs)")
    print("SAEBench driver settings that differ from its defaults: " + "; ".join(peer["deviations"])
          + "; absorption step's ICL vocabulary sorted (bench/peers/run_saebench_sorted_vocab.py)")


def compare_fresh(model, sae, words: int) -> None:
    """Shared prefixes (one sampled prefix per group, keys/values cached) vs a fresh prefix per word."""
    rows = {}
    for share in (True, False):
        # the model check is not part of the comparison: 2 words a letter keeps it from dominating the time
        config = AbsorptionConfig(max_words=words, share_prefix=share, run_ablation_metric=False,
                                  model_check_per_letter=2, split_mode="holdout")
        hook, result, shared, per_sae = timed_run(model, sae, config)
        rows[share] = (hook, result, shared)
    (h1, r1, _), (h0, r0, _) = rows[True], rows[False]
    print(f"\n== shared vs fresh prefixes, {words:,} words ==")
    print(f"model passes for the word activations: shared {h1.seconds['activations']:.1f}s, fresh {h0.seconds['activations']:.1f}s "
          f"({h0.seconds['activations'] / h1.seconds['activations']:.1f}x)")
    print(f"mean probe F1: shared {h1.test_scores.f1.mean():.3f}, fresh {h0.test_scores.f1.mean():.3f}; "
          f"per-letter |dF1| median {np.median(np.abs(h1.test_scores.f1 - h0.test_scores.f1)):.3f}")
    cos = (h1.probe.directions() * h0.probe.directions()).sum(1)
    print(f"probe direction cosine shared vs fresh: median {np.median(cos):.2f} (min {cos.min():.2f}); "
          f"stability within one run: median {np.median(h1.stability):.2f}")
    for name, result in (("shared", r1), ("fresh", r0)):
        f, full = result.fraction[1], result.full[1]
        print(f"{name:6s}: mean absorption fraction {f.value:.3f} [{f.low:.3f}, {f.high:.3f}], "
              f"full-absorption rate {full.value:.3f} [{full.low:.3f}, {full.high:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--no-ablation", action="store_true", help="skip timing the paper's ablation metric")
    parser.add_argument("--compare-fresh", type=int, default=0, metavar="WORDS",
                        help="also compare shared and fresh prefixes on this many words (fresh is slow)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--sae", default=SAE_PATH)
    parser.add_argument("--split-mode", choices=["holdout", "crossfit"], default="holdout",
                        help="holdout (default here): SAEBench's 80/20 protocol, the one --peer compares with")
    parser.add_argument("--seed", type=int, default=None, help="word sample and split seed (default: AbsorptionConfig's, 42)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, ours and the peer's (default: torch's)")
    parser.add_argument("--peer", action="store_true",
                        help="also run SAEBench 0.6.0's absorption eval on the same words, seed and threads")
    parser.add_argument("--protocol", choices=["ours", "saebench"], default="ours",
                        help="--peer: 'saebench' compares SAEBench's own protocol run with our activations "
                             "(python -m precompute saebench) with SAEBench's driver, letter by letter")
    parser.add_argument("--protocol-batch-size", type=int, default=128,
                        help="--protocol saebench: prompts per model call of our forward pass")
    parser.add_argument("--peer-llm-batch-size", type=int, default=None,
                        help="--peer: SAEBench's llm_batch_size (default: its AbsorptionEvalConfig's)")
    args = parser.parse_args()
    if args.peer and args.skip_speed:
        parser.error("--peer compares with the speed run: drop --skip-speed")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.protocol == "saebench":
        if not args.peer:
            parser.error("--protocol saebench compares with SAEBench: add --peer")
        from precompute.loading.model import load_tokenizer

        compare_protocol(load_tokenizer(), args.sae, args.words, 42 if args.seed is None else args.seed,
                         args.threads or torch.get_num_threads(), args.protocol_batch_size)
        return
    model = load_model()
    sae = load_sae(SAESpec.parse(args.sae))
    config = AbsorptionConfig(max_words=args.words, split_mode=args.split_mode)
    if args.peer and args.split_mode != "holdout":
        parser.error("--peer runs SAEBench's 80/20 protocol: use --split-mode holdout")
    if args.seed is not None:
        config = dataclasses.replace(config, prompts=dataclasses.replace(config.prompts, seed=args.seed))
    if not args.skip_speed:
        ours = report_speed(model, sae, config, ablation=not args.no_ablation)
        if args.peer:
            compare_with_saebench(model, sae, args.sae, config, ours, torch.get_num_threads(), args.peer_llm_batch_size)
    if args.compare_fresh:
        compare_fresh(model, sae, args.compare_fresh)


if __name__ == "__main__":
    main()
