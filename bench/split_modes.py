"""SAEBench's 80/20 protocol (holdout) against cross-fitting (every word measured out of fold) on the same
SAEs, words and word activations, in one run: the headline metrics with their intervals, the between-fold
spread, how many letters' split latents change between folds, and the per-SAE seconds each mode takes.

Both modes read the same model pass (cross-fitting's prompts; the holdout view re-splits those words 80/20
with SAEBench's seeded split and trains its one probe on the 80 %), so the comparison isolates the protocol.
The paper's ablation metric is left out (its cost does not depend on the mode: it samples at most
--ablation-candidates words a letter in both).

    python bench/split_modes.py                          # the 9 shipped SAEs, the whole vocabulary
    python bench/split_modes.py --words 5000 --saes assets/saes/smollm2-l6-topk-4k-k32
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

from precompute.absorption import probe as pr  # noqa: E402
from precompute.absorption.config import TRAINING_ONLY, AbsorptionConfig  # noqa: E402
from precompute.absorption.hook import HookProbeData, compute_hook_data, out_of_fold_logits  # noqa: E402
from precompute.absorption.measure import SAEAbsorption, compute_sae_absorption  # noqa: E402
from precompute.absorption.vocab import split_words  # noqa: E402
from precompute.loading.model import load_model  # noqa: E402
from precompute.loading.sae import SAESpec, hook_layer, load_sae, sae_hook_name  # noqa: E402

SHIPPED = sorted(p for p in (Path(__file__).resolve().parent.parent / "assets" / "saes").iterdir() if p.is_dir())


def holdout_view(hook: HookProbeData, config: AbsorptionConfig) -> HookProbeData:
    """The same words and activations under SAEBench's protocol: its seeded 80/20 split, one probe on the 80 %."""
    _, test_words = split_words(hook.prompts.words, config.prompts)
    test_ids = {w.token_id for w in test_words}
    folds = np.array([0 if w.token_id in test_ids else TRAINING_ONLY for w in hook.prompts.words])
    labels = hook.prompts.labels
    train = np.flatnonzero(folds == TRAINING_ONLY)
    probe = pr.train_letter_probe(hook.acts[train], labels[train], config.probe)
    logits = out_of_fold_logits(hook.acts, folds, [probe], probe)
    measured = np.flatnonzero(folds == 0)
    return dataclasses.replace(hook, folds=folds, fold_probes=[probe], probe=probe, probe_logits=logits,
                               test_scores=pr.classifier_scores(logits[measured] > 0, labels[measured]),
                               aucs=pr.letter_aucs(logits[measured], labels[measured]))


def interval(result: SAEAbsorption, name: str) -> str:
    value = getattr(result, name)[1]
    return f"{value.value:.3f} [{value.low:.3f}, {value.high:.3f}]"


def report(key: str, mode: str, result: SAEAbsorption, seconds: float) -> None:
    sd = result.fold_sd["fraction"]
    split = np.mean([len(result.letters[j].split_latents) for j in result.included_letters])
    print(f"{key:30s} {mode:8s}  fraction {interval(result, 'fraction')}  full {interval(result, 'full')}  "
          f"split latents {split:.2f}  between-fold SD {'-' if np.isnan(sd) else f'{sd:.3f}'}  "
          f"letters with unstable split latents {len(result.unstable_letters):2d}/{len(result.included_letters)}  "
          f"per-SAE {seconds:6.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in result.seconds.items())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saes", nargs="*", type=Path, default=SHIPPED)
    parser.add_argument("--words", type=int, default=None, help="seeded word subset (default: the whole vocabulary)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    crossfit = AbsorptionConfig(max_words=args.words, split_mode="crossfit", n_folds=args.folds, run_ablation_metric=False)
    holdout = dataclasses.replace(crossfit, split_mode="holdout")
    model = load_model()
    saes = [(path.name, load_sae(SAESpec(key=path.name, path=path))) for path in args.saes]
    totals = {"holdout": 0.0, "crossfit": 0.0}
    for hook_name in sorted({sae_hook_name(sae) for _, sae in saes}, key=hook_layer):
        start = time.perf_counter()
        hook_cf = compute_hook_data(model, "smollm2-135m-embedded", hook_name, hook_layer(hook_name), crossfit,
                                    log=lambda *_: None)
        hook_ho = holdout_view(hook_cf, holdout)
        print(f"\n== {hook_name}: {len(hook_cf.prompts):,} words; holdout measures {len(hook_ho.measured):,}, "
              f"crossfit {len(hook_cf.measured):,} ({args.folds} folds); shared work "
              f"{time.perf_counter() - start:.0f} s; probe F1 (mean of 26) holdout {hook_ho.test_scores.f1.mean():.3f}, "
              f"crossfit out of fold {hook_cf.test_scores.f1.mean():.3f} ==")
        for key, sae in ((k, s) for k, s in saes if sae_hook_name(s) == hook_name):
            for mode, config, hook in (("holdout", holdout, hook_ho), ("crossfit", crossfit, hook_cf)):
                start = time.perf_counter()
                result = compute_sae_absorption(key, sae, model, hook, config, log=lambda *_: None)
                seconds = time.perf_counter() - start
                totals[mode] += seconds
                report(key, mode, result, seconds)
    print(f"\nper-SAE seconds over {len(saes)} SAEs: holdout {totals['holdout']:.0f} s, crossfit {totals['crossfit']:.0f} s "
          f"(+{totals['crossfit'] - totals['holdout']:.0f} s, {totals['crossfit'] / max(totals['holdout'], 1e-9):.1f}x; "
          "the paper's ablation metric, left out here, adds the same in both modes)")


if __name__ == "__main__":
    main()
