"""The paper's ablation metric over one SAE (Chanin et al.): candidate words sampled by whole prefix groups, and
integrated-gradients attributions of each latent on the model's own answer, batched by shared prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from precompute.absorption import ablation as abl
from precompute.absorption.codes import Codes
from precompute.absorption.config import AbsorptionConfig
from precompute.absorption.hook import HookProbeData, prefix_clustered_sample, prefix_order
from precompute.absorption.prompts import PromptSet

if TYPE_CHECKING:  # the measurement calls this module; its result types are only named here
    from precompute.absorption.measure import LetterAbsorption


def sample_paper_candidates(letter: LetterAbsorption, prompts: PromptSet, rank: np.ndarray,
                            cfg: abl.AblationMetricConfig) -> float:
    """Chooses each fold's `sampled` words: at most max_candidates of the letter's candidates pooled over
    folds. Returns the sampled portion of the pool (the weight of a sampled word is 1 / portion)."""
    pool = np.concatenate([f.candidates for f in letter.folds])
    chosen = set(prefix_clustered_sample(pool, prompts, rank, cfg.max_candidates,
                                         np.random.default_rng(cfg.seed + letter.letter)).tolist())
    for fold in letter.folds:
        fold.sampled = np.array(sorted(int(w) for w in fold.candidates if int(w) in chosen), dtype=np.int64)
    return len(chosen) / len(pool) if len(pool) else 1.0


def run_paper_metric(letters: list[LetterAbsorption], sae, model: HookedTransformer, hook: HookProbeData,
                     codes: Codes, config: AbsorptionConfig, sae_key: str = "") -> None:
    """The paper's ablation metric on at most max_candidates of each letter's candidates (pooled over folds);
    each sampled word is judged with its own fold's split latents and probe. All letters' words run
    together, batched by shared prefix (the attribution of a word does not depend on its letter, only the
    metric's correct answer does)."""
    cfg = config.ablation
    rank = prefix_order(hook.prompts, cfg.seed)
    portions = [sample_paper_candidates(letter, hook.prompts, rank, cfg) for letter in letters]
    words = np.concatenate([f.sampled for letter in letters for f in letter.folds] + [np.array([], dtype=np.int64)])
    answers = np.concatenate([np.full(len(f.sampled), letter.letter) for letter in letters for f in letter.folds]
                             + [np.array([], dtype=np.int64)])
    top_latents, top_values = word_attributions(words, answers, sae, model, hook, cfg, desc=f"{sae_key} ablation metric")
    start = 0
    for letter, portion in zip(letters, portions):
        for fold in letter.folds:
            rows = slice(start, start + len(fold.sampled))
            start += len(fold.sampled)
            fold.paper = abl.paper_absorption_from_top(top_latents[rows], top_values[rows], codes[fold.sampled],
                                                       fold.split.split_latents, fold.decoder_cos, cfg)
            position = {int(w): n for n, w in enumerate(fold.true_positives)}
            for row, word in enumerate(fold.sampled):
                fold.paper_weights[position[int(word)]] = float(fold.paper.is_absorption[row]) / portion


def word_attributions(words: np.ndarray, answers: np.ndarray, sae, model: HookedTransformer, hook: HookProbeData,
                      cfg: abl.AblationMetricConfig, desc: str = "ablation metric") -> tuple[np.ndarray, np.ndarray]:
    """Each word's top_k_latents latents by attribution to its letter metric (answers [len(words)]: the letter
    index), most negative first: (latents [len(words), k], attributions [len(words), k]). Words run batched by
    shared prefix; each batch's [batch, d_sae] attributions are cut to their top k at once."""
    prompts = hook.prompts
    k = min(cfg.top_k_latents, sae.W_dec.shape[0])
    top_latents = np.zeros((len(words), k), dtype=np.int64)
    top_values = np.zeros((len(words), k), dtype=np.float32)
    by_prefix: dict[int, list[int]] = {}
    for row, i in enumerate(words):
        by_prefix.setdefault(int(prompts.prefix_index[i]), []).append(row)
    chunks = [(prefix_id, rows[start : start + cfg.batch_size]) for prefix_id, rows in by_prefix.items()
              for start in range(0, len(rows), cfg.batch_size)]
    cached_prefix, cache = None, None  # the current prefix's keys and values (chunks come prefix by prefix)
    for prefix_id, chunk in tqdm(chunks, desc=desc, disable=not chunks):
        suffixes = torch.tensor([[prompts.words[i].token_id] + prompts.tail_ids for i in words[chunk]])
        correct = torch.as_tensor(answers[chunk], dtype=torch.long)
        prefix = prompts.prefixes[prefix_id]
        if prefix_id != cached_prefix:
            cached_prefix, cache = prefix_id, abl.prefix_cache(model, prefix, stop_at_layer=None) if prefix else None
        attributions, _ = abl.ablation_attributions(model, sae, hook.hook_name, prefix, suffixes, correct,
                                                    hook.letter_ids, cfg, cache=cache)  # [batch, d_sae]
        top_latents[chunk], top_values[chunk] = abl.top_attributions(attributions, k)
    return top_latents, top_values
