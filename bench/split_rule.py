"""The split-latent rule: SAEBench's (rank candidates by the L1 probe's weight) against ours (guarded: SAEBench's ranking
unless its split latents classify worse than the class's best single latent alone; or f1: rank by each latent's own F1 on the
training words), on the same words, folds, probes and codes, in one run.

For each SAE and task it prints the headline under both rules (cross-fitted, with intervals), how many classes change
their split latents, in how many the rule's first pick is near-useless (own F1 < 0.1 on the fold's held-out words)
while another latent has own F1 > 0.5, and in how many the class's main latent (best encoder cosine) is left out of
the split latents. With --why it prints, for every class where the L1 rule's first pick is near-useless, what the L1
probe saw: the first pick's weight, how often it fires, how large it is when it fires, against the best single
latent's (the explanation in docs/split_rule.md).

    python bench/split_rule.py                                        # 4k-k32, first_letter + wordnet_category
    python bench/split_rule.py --saes assets/saes/smollm2-l6-topk-1k-k32 --tasks first_letter --words 5000 --why
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from precompute.absorption import ksparse as ks  # noqa: E402
from precompute.absorption import probe as pr  # noqa: E402
from precompute.absorption.codes import as_csr, column, encode_words  # noqa: E402
from precompute.absorption.config import AbsorptionConfig, config_for_task  # noqa: E402
from precompute.absorption.hook import HookProbeData, compute_hook_data  # noqa: E402
from precompute.absorption.measure import SAEAbsorption, compute_sae_absorption, normalized_sae  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402
from precompute.loading.sae import SAESpec, hook_layer, load_sae, sae_hook_name  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
USELESS_F1, GOOD_F1 = 0.1, 0.5


def interval(result: tuple) -> str:
    value = result[1]
    return f"{value.value:.3f} [{value.low:.3f}, {value.high:.3f}]"


def first_pick_scores(result: SAEAbsorption, rule: str) -> list[tuple[int, float]]:
    """Per included class: (the rule's first split latent on fold 0, its own F1 on fold 0's held-out words)."""
    out = []
    for j in result.included_letters:
        fold = result.letters[j].folds[0]
        split = fold.split if result.split_rule == rule else fold.other_split
        out.append((split.fits[0].latents[0], split.fits[0].f1))
    return out


def report(key: str, task: str, result: SAEAbsorption, classes: tuple[str, ...], seconds: float) -> None:
    changed = result.rule_changed_letters
    print(f"\n{key} / {task}: {len(result.included_letters)} classes included; {seconds:.0f} s")
    print(f"  mean absorption fraction: {result.split_rule} rule {interval(result.fraction)}, "
          f"{result.other_rule} rule {interval(result.other_fraction)}")
    print(f"  full-absorption rate:     {result.split_rule} rule {interval(result.full)}, "
          f"{result.other_rule} rule {interval(result.other_full)}")
    print(f"  classes whose split latents differ between the rules (some fold): {len(changed)} "
          f"({', '.join(classes[j] for j in changed) or '-'})")
    for rule in (result.split_rule, result.other_rule):
        picks = first_pick_scores(result, rule)
        best = [result.letters[j].best_latent.f1 for j in result.included_letters]
        useless = [classes[j] for j, (_, f1), b in zip(result.included_letters, picks, best)
                   if f1 < USELESS_F1 and b > GOOD_F1]
        print(f"  {rule} rule: first pick with k=1 F1 < {USELESS_F1} while the best single latent has F1 > {GOOD_F1}: "
              f"{len(useless)} ({', '.join(useless) or '-'}); mean k=1 F1 {np.mean([f for _, f in picks]):.3f}")
    outside = [classes[j] for j in result.main_outside_split_letters]
    other_outside = [classes[j] for j in result.included_letters
                     if result.letters[j].main.latent not in result.letters[j].other_split_latents]
    print(f"  main latent outside the split latents: {result.split_rule} rule {len(outside)} "
          f"({', '.join(outside) or '-'}); {result.other_rule} rule {len(other_outside)} ({', '.join(other_outside) or '-'})")


def adam_steps(n_train: int, config: pr.SparseProbeConfig) -> int:
    return config.epochs * -(-n_train // config.batch_size)


def adam_cap(n_train: int, config: pr.SparseProbeConfig) -> float:
    """The most any weight can move from zero: one learning rate per step, the rate decaying per epoch."""
    gamma = (config.end_lr / config.lr) ** (1 / config.epochs)
    return -(-n_train // config.batch_size) * sum(config.lr * gamma**epoch for epoch in range(config.epochs))


def why(key: str, sae, hook: HookProbeData, config: AbsorptionConfig, result: SAEAbsorption,
        classes: tuple[str, ...]) -> None:
    """For the classes whose L1 first pick is near-useless: what the L1 probe saw on fold 0's training words."""
    codes = encode_words(normalized_sae(sae), hook.acts)
    labels = hook.prompts.labels
    train = hook.training_words(0)
    train_codes = as_csr(codes[train])
    sparse = pr.train_sparse_probe(train_codes, labels[train], config.sparse_probe, config.n_classes)
    latent_f1 = ks.single_latent_f1(train_codes, labels[train], config.n_classes)
    print(f"  Adam moves a weight by about the learning rate per step while its gradient keeps its sign: after "
          f"{adam_steps(len(train), config.sparse_probe)} steps no weight can pass {adam_cap(len(train), config.sparse_probe):.3f}, "
          f"the L1 probe's largest weight here is {sparse.weight.max():.3f}")
    print(f"  why ({key}, fold 0 training words: {len(train)}): latent | L1 weight | own F1 | fires on % of words | "
          "% of the class's words | mean activation when firing | weight x mean activation x firing share")
    l1_picks = dict(zip(result.included_letters, first_pick_scores(result, "l1")))
    for j in result.included_letters:
        pick, f1 = l1_picks[j]
        if f1 >= USELESS_F1 or result.letters[j].best_latent.f1 <= GOOD_F1:
            continue
        best = int(np.argmax(latent_f1[:, j]))
        print(f"    class {classes[j]}:")
        for name, latent in (("L1 first pick", pick), ("best single", best)):
            acts = column(train_codes, latent)
            firing = acts > 0
            own = labels[train] == j
            mean_act = float(acts[firing].mean()) if firing.any() else 0.0
            weight = float(sparse.weight[j, latent])
            print(f"      {name:13s} {latent:6d} | {weight:8.3f} | {latent_f1[latent, j]:.3f} | "
                  f"{100 * firing.mean():6.2f} | {100 * firing[own].mean():6.2f} | {mean_act:7.3f} | "
                  f"{weight * mean_act * firing.mean():8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saes", nargs="*", type=Path, default=[ROOT / "assets/saes/smollm2-l6-topk-4k-k32"])
    parser.add_argument("--tasks", nargs="*", default=["first_letter", "wordnet_category"])
    parser.add_argument("--words", type=int, default=None, help="seeded word subset (default: the whole vocabulary)")
    parser.add_argument("--why", action="store_true", help="explain each near-useless L1 first pick")
    parser.add_argument("--rule", choices=list(ks.SPLIT_RULES), default="guarded",
                        help="the rule measured against its other (ksparse.OTHER_RULE): guarded -> l1, f1 -> l1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    model = load_model()
    saes = [(path.name, load_sae(SAESpec(key=path.name, path=path))) for path in args.saes]
    base = AbsorptionConfig(max_words=args.words, run_ablation_metric=False, k_sparse=ks.KSparseConfig(rule=args.rule))
    for task in args.tasks:
        config = config_for_task(base, task)
        for hook_name in sorted({sae_hook_name(sae) for _, sae in saes}, key=hook_layer):
            start = time.perf_counter()
            hook = compute_hook_data(model, "smollm2-135m-embedded", hook_name, hook_layer(hook_name), config,
                                     log=lambda *_: None)
            print(f"\n== {task} at {hook_name}: {len(hook.prompts):,} words, shared work {time.perf_counter() - start:.0f} s ==")
            for key, sae in ((k, s) for k, s in saes if sae_hook_name(s) == hook_name):
                start = time.perf_counter()
                result = compute_sae_absorption(key, sae, model, hook, config, log=lambda *_: None)
                report(key, task, result, config.prompts.classes, time.perf_counter() - start)
                if args.why:
                    why(key, sae, hook, config, result, config.prompts.classes)


if __name__ == "__main__":
    main()
