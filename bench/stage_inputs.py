"""What the per-stage speed benches (ablation_speed.py, ksparse_speed.py) share: the embedded model, one SAE and its
hook's absorption data (prompts, activations, probes) for a number of words, with a line saying what was built."""

from __future__ import annotations

import os
import time

import torch

from precompute.absorption.config import AbsorptionConfig
from precompute.absorption.hook import HookProbeData, compute_hook_data
from precompute.loading.model import load_model
from precompute.loading.sae import SAESpec, hook_layer, load_sae, sae_hook_name


def stage_inputs(sae_path: str, words: int | None, run_ablation_metric: bool):
    """(model, sae, config, hook data) for `words` sampled words (None: the whole vocabulary), the demo's settings."""
    model = load_model()
    sae = load_sae(SAESpec.parse(sae_path))
    hook_name = sae_hook_name(sae)
    config = AbsorptionConfig(max_words=words, run_ablation_metric=run_ablation_metric)
    start = time.perf_counter()
    hook: HookProbeData = compute_hook_data(model, "smollm2-135m-embedded", hook_name, hook_layer(hook_name), config,
                                            log=lambda *_: None)
    print(f"{sae_path}: {len(hook.prompts):,} words at {hook_name} ({config.split_mode}, {config.fold_count} folds), "
          f"hook data {time.perf_counter() - start:.0f} s, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.1f}")
    return model, sae, config, hook
