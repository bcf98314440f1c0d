"""The absorption precompute: shared per-hook work (prompts, activations, probe, model check,
baselines) computed once and reused by every SAE at that hook; then the per-SAE work (codes, probe
cosines, k-sparse probing, split and main latents, both absorption metrics, intervals)."""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from precompute.absorption import ablation as abl
from precompute.absorption import baselines as base
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.activations import answer_logits, word_activations
from precompute.absorption.projection import ProjectionMetricConfig, projection_absorption
from precompute.absorption.prompts import LETTERS, PromptSet, build_prompt_set, letter_token_ids
from precompute.absorption.stats import BootstrapConfig, Interval, letter_and_overall_intervals
from precompute.absorption.vocab import PromptConfig, alphabetic_vocabulary, split_words


@dataclass(frozen=True)
class AbsorptionConfig:
    """Every default of both reference metrics, plus how we run them. See
    ../shared/reference/absorption-metrics.md for the definitions."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    probe: pr.ProbeConfig = field(default_factory=pr.ProbeConfig)
    sparse_probe: pr.SparseProbeConfig = field(default_factory=pr.SparseProbeConfig)
    k_sparse: ks.KSparseConfig = field(default_factory=ks.KSparseConfig)
    projection: ProjectionMetricConfig = field(default_factory=ProjectionMetricConfig)
    ablation: abl.AblationMetricConfig = field(default_factory=abl.AblationMetricConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    max_words: int | None = None  # None: the whole alphabetic vocabulary (as SAEBench); else a seeded subset
    share_prefix: bool = True  # one sampled in-context prefix per group of words, its keys/values cached
    prefix_group_size: int = 512  # words per shared prefix (share_prefix only)
    batch_size: int = 128  # words per model call
    model_check_per_letter: int = 50  # test words per letter on which the model's own answer is checked
    min_probe_f1: float = 0.6  # letters with probe F1 <= this are left out of the headline means (SAEBench)
    run_ablation_metric: bool = True  # the paper's metric needs gradients through the model (slowest part)


@dataclass
class HookProbeData:
    """Everything shared by the SAEs at one hook."""
    model_name: str
    hook_name: str
    layer: int
    prompts: PromptSet
    acts: np.ndarray  # [n, d_model] at the word position
    probe: pr.LinearProbe
    probe_logits: np.ndarray  # [n, 26]
    test_scores: pr.ClassifierScores
    aucs: np.ndarray  # [26]
    stability: np.ndarray  # [26]
    model_accuracy: np.ndarray  # [26] the model's own first-letter accuracy on checked test words
    model_checked: np.ndarray  # [26] words checked per letter
    model_correct: dict[int, bool]  # word index -> the model answered its letter
    neuron_baseline: list[base.BaselineScore]
    pca_baseline: list[base.BaselineScore]
    letter_ids: list[int]
    seconds: dict[str, float]

    @property
    def train(self) -> np.ndarray:
        return np.flatnonzero(~self.prompts.is_test)

    @property
    def test(self) -> np.ndarray:
        return np.flatnonzero(self.prompts.is_test)

    def probe_true_positives(self, letter: int) -> np.ndarray:
        """Test words of this letter that the probe classifies correctly (where absorption is measured)."""
        test = self.test
        return test[(self.prompts.labels[test] == letter) & (self.probe_logits[test, letter] > 0)]


def select_words(tokenizer, config: AbsorptionConfig):
    words = alphabetic_vocabulary(tokenizer)
    if config.max_words is not None and config.max_words < len(words):
        words = random.Random(config.prompts.seed).sample(words, config.max_words)
    return split_words(words, config.prompts)


def model_check(model: HookedTransformer, prompts: PromptSet, letter_ids: list[int], config: AbsorptionConfig):
    """The model's own answer (argmax over " A".." Z") on up to model_check_per_letter test words a letter."""
    rng = np.random.default_rng(config.prompts.seed)
    chosen = []
    for letter in range(26):
        members = np.flatnonzero(prompts.is_test & (prompts.labels == letter))
        chosen.extend(rng.permutation(members)[: config.model_check_per_letter].tolist())
    chosen = np.array(sorted(chosen), dtype=np.int64)
    logits = answer_logits(model, prompts, chosen, letter_ids, batch_size=max(1, config.batch_size // 2))
    correct = logits.argmax(axis=1) == prompts.labels[chosen]
    checked = np.bincount(prompts.labels[chosen], minlength=26)
    accuracy = np.bincount(prompts.labels[chosen], weights=correct, minlength=26) / np.maximum(checked, 1)
    return accuracy, checked, {int(i): bool(c) for i, c in zip(chosen, correct)}


def compute_hook_data(model: HookedTransformer, model_name: str, hook_name: str, layer: int,
                      config: AbsorptionConfig, stored_probe: pr.LinearProbe | None = None, log=print) -> HookProbeData:
    """The shared work at one hook. With `stored_probe` (the probe already in the database for the same
    config), the probe is reused instead of retrained, so every SAE at the hook is measured against the
    same directions; the per-hook tables are then not rewritten and their extras are skipped."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    tokenizer = model.tokenizer
    train_words, test_words = select_words(tokenizer, config)
    bos = tokenizer.bos_token_id if model.cfg.default_prepend_bos else None
    prompts = build_prompt_set(tokenizer, train_words, test_words, config.prompts, config.share_prefix,
                               config.prefix_group_size, bos)
    letter_ids = letter_token_ids(tokenizer, config.prompts)
    seconds["prompts"] = time.perf_counter() - t
    log(f"{hook_name}: {len(prompts)} words ({prompts.is_test.sum()} test, {prompts.n_dropped} dropped), "
        f"{len(prompts.prefixes)} prefixes")

    t = time.perf_counter()
    acts = word_activations(model, prompts, hook_name, layer, batch_size=config.batch_size)
    seconds["activations"] = time.perf_counter() - t

    t = time.perf_counter()
    train, test = np.flatnonzero(~prompts.is_test), np.flatnonzero(prompts.is_test)
    labels = prompts.labels
    probe = stored_probe or pr.train_letter_probe(acts[train], labels[train], config.probe)
    logits = probe.logits(acts)
    test_scores = pr.classifier_scores(logits[test] > 0, labels[test])
    aucs = pr.letter_aucs(logits[test], labels[test])
    seconds["probe"] = time.perf_counter() - t
    if stored_probe is not None:
        return HookProbeData(model_name, hook_name, layer, prompts, acts, probe, logits, test_scores, aucs,
                             np.full(26, np.nan), np.zeros(26), np.zeros(26, dtype=np.int64), {}, [], [], letter_ids, seconds)
    t = time.perf_counter()
    stability = pr.probe_stability(acts[train], labels[train], config.probe)
    seconds["probe_stability"] = time.perf_counter() - t

    t = time.perf_counter()
    accuracy, checked, correct = model_check(model, prompts, letter_ids, config)
    seconds["model_check"] = time.perf_counter() - t

    t = time.perf_counter()
    neuron = base.best_direction_baseline("neuron", acts[train], labels[train], acts[test], labels[test])
    pca_train, pca_test = base.pca_projections(acts[train], acts[test])
    pca = base.best_direction_baseline("pca", pca_train, labels[train], pca_test, labels[test])
    seconds["baselines"] = time.perf_counter() - t
    return HookProbeData(model_name, hook_name, layer, prompts, acts, probe, logits, test_scores, aucs, stability,
                         accuracy, checked, correct, neuron, pca, letter_ids, seconds)


@dataclass
class LetterAbsorption:
    letter: int
    split: ks.LetterSplit
    main: ks.MainLatent
    best_latent: base.BaselineScore
    true_positives: np.ndarray  # word indices (probe true positives among test words)
    projection: object  # ProjectionResult over true_positives
    split_acts: np.ndarray  # [n_tp, n_split]
    top_acts: np.ndarray  # [n_tp, k] activations of the top latents by projection
    candidates: np.ndarray  # word indices eligible for the paper metric
    sampled: np.ndarray  # the candidates actually measured (<= max_candidates)
    paper: abl.PaperAbsorption | None
    paper_weights: np.ndarray  # [n_tp] per true positive: is_absorption / sample_portion, 0 elsewhere


@dataclass
class SAEAbsorption:
    sae_key: str
    hook: HookProbeData
    decoder_cos: np.ndarray  # [d_sae, 26]
    encoder_cos: np.ndarray  # [d_sae, 26]
    letters: list[LetterAbsorption]
    fraction: tuple[dict[int, Interval], Interval]
    full: tuple[dict[int, Interval], Interval]
    paper_rate: tuple[dict[int, Interval], Interval]
    included_letters: list[int]
    seconds: dict[str, float]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


@torch.no_grad()
def encode_words(sae, acts: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    return np.concatenate([sae.encode(torch.from_numpy(acts[i : i + batch_size]).to(device, dtype)).float().cpu().numpy()
                           for i in range(0, len(acts), batch_size)])


def normalized_sae(sae):
    """A copy with unit-norm decoder rows (codes rescaled to match), as both references require."""
    folded = copy.deepcopy(sae)
    with torch.no_grad():
        folded.fold_W_dec_norm()
    return folded


def compute_sae_absorption(sae_key: str, sae, model: HookedTransformer, hook: HookProbeData, config: AbsorptionConfig,
                           log=print) -> SAEAbsorption:
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    sae = normalized_sae(sae)
    codes = encode_words(sae, hook.acts)
    directions = hook.probe.directions()  # [26, d_model]
    W_dec = sae.W_dec.detach().float().cpu().numpy()  # [d_sae, d_model]
    W_enc = sae.W_enc.detach().float().cpu().numpy().T  # [d_sae, d_model]
    decoder_cos = unit_rows(W_dec) @ directions.T
    encoder_cos = unit_rows(W_enc) @ directions.T
    seconds["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    train, test, labels = hook.train, hook.test, hook.prompts.labels
    sparse = pr.train_sparse_probe(codes[train], labels[train], config.sparse_probe)
    splits = ks.k_sparse_probing(sparse, codes[train], labels[train], codes[test], labels[test], config.k_sparse)
    mains = ks.main_latents(encoder_cos, codes[test], labels[test])
    best = base.best_active_latent(codes[train], labels[train], codes[test], labels[test])
    seconds["k_sparse"] = time.perf_counter() - t

    t = time.perf_counter()
    letters = []
    for j in range(26):
        tp = hook.probe_true_positives(j)
        split = splits[j].split_latents
        result = projection_absorption(hook.acts[tp], codes[tp], hook.probe.weight[j], W_dec, split, config.projection)
        not_k_sparse = ~ks.k_sparse_decision(splits[j].split_fit, codes[tp])
        silent = codes[tp][:, split].sum(axis=1) < config.ablation.inactive_eps
        candidates = tp[not_k_sparse & silent]
        top_acts = np.take_along_axis(codes[tp], result.top_latents, axis=1)
        letters.append(LetterAbsorption(j, splits[j], mains[j], best[j], tp, result, codes[tp][:, split], top_acts,
                                        candidates, np.array([], dtype=np.int64), None, np.zeros(len(tp))))
    seconds["projection"] = time.perf_counter() - t

    t = time.perf_counter()
    if config.run_ablation_metric:
        for letter in tqdm(letters, desc=f"{sae_key} ablation metric"):
            run_paper_metric(letter, sae, model, hook, codes, decoder_cos[:, letter.letter], config)
    seconds["ablation"] = time.perf_counter() - t

    t = time.perf_counter()
    included = [j for j in range(26) if hook.test_scores.f1[j] > config.min_probe_f1]
    fraction = letter_and_overall_intervals({l.letter: l.projection.absorption_fraction for l in letters}, included, config.bootstrap)
    full = letter_and_overall_intervals({l.letter: l.projection.is_full_absorption.astype(float) for l in letters}, included, config.bootstrap)
    paper = letter_and_overall_intervals({l.letter: l.paper_weights for l in letters}, included, config.bootstrap)
    seconds["bootstrap"] = time.perf_counter() - t
    log(f"{sae_key}: mean absorption fraction {fraction[1].value:.3f} [{fraction[1].low:.3f}, {fraction[1].high:.3f}], "
        f"full-absorption rate {full[1].value:.3f}, paper absorption rate {paper[1].value:.3f} over {len(included)} letters; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))
    return SAEAbsorption(sae_key, hook, decoder_cos, encoder_cos, letters, fraction, full, paper, included, seconds)


def run_paper_metric(letter: LetterAbsorption, sae, model: HookedTransformer, hook: HookProbeData, codes: np.ndarray,
                     decoder_cos: np.ndarray, config: AbsorptionConfig) -> None:
    cfg = config.ablation
    rng = np.random.default_rng(cfg.seed + letter.letter)
    candidates = letter.candidates
    sampled = np.sort(rng.permutation(candidates)[: cfg.max_candidates]) if len(candidates) else candidates
    portion = len(sampled) / len(candidates) if len(candidates) else 1.0
    prompts = hook.prompts
    attributions = np.zeros((len(sampled), codes.shape[1]), dtype=np.float32)
    by_prefix: dict[int, list[int]] = {}
    for row, i in enumerate(sampled):
        by_prefix.setdefault(int(prompts.prefix_index[i]), []).append(row)
    for prefix_id, rows in by_prefix.items():
        for start in range(0, len(rows), cfg.batch_size):
            chunk = rows[start : start + cfg.batch_size]
            words = sampled[chunk]
            suffixes = torch.tensor([[prompts.words[i].token_id] + prompts.tail_ids for i in words])
            correct = torch.full((len(words),), letter.letter, dtype=torch.long)
            attributions[chunk], _ = abl.ablation_attributions(model, sae, hook.hook_name, prompts.prefixes[prefix_id],
                                                               suffixes, correct, hook.letter_ids, cfg)
    letter.sampled = sampled
    letter.paper = abl.paper_absorption(attributions, codes[sampled], letter.split.split_latents, decoder_cos, cfg)
    position = {int(w): n for n, w in enumerate(letter.true_positives)}
    for row, word in enumerate(sampled):
        letter.paper_weights[position[int(word)]] = float(letter.paper.is_absorption[row]) / portion


def letter_name(index: int) -> str:
    return LETTERS[index]
