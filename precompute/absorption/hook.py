"""The per-hook work, shared by every SAE at a hook (SAEBench's "probe" step): the task's words and prompts, the model's
activations at the word, the folds, the probes (one per fold, fitted on the other folds), the model's own answers
and the neuron and PCA baselines."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
from transformer_lens import HookedTransformer

from precompute.absorption import baselines as base
from precompute.absorption import probe as pr
from precompute.absorption.activations import answer_logits, fast_passes, word_activations
from precompute.absorption.config import TRAINING_ONLY, AbsorptionConfig
from precompute.absorption.prompts import PromptSet, build_prompt_set, letter_token_ids
from precompute.absorption.tasks import get_task
from precompute.absorption.vocab import split_words, task_vocabulary


@dataclass
class HookProbeData:
    """Everything shared by the SAEs at one hook."""
    model_name: str
    hook_name: str
    layer: int
    prompts: PromptSet
    acts: np.ndarray  # [n, d_model] at the word position
    folds: np.ndarray  # [n] the fold a word is measured in (its probe never saw it), or TRAINING_ONLY
    fold_probes: list[pr.LinearProbe]  # one per measured fold, fitted on the words of the other folds
    probe: pr.LinearProbe  # for display (decoder cosines): fitted on every word (crossfit) or the holdout probe
    probe_logits: np.ndarray  # [n, 26] out-of-fold (each measured word by its fold's probe)
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
    def measured(self) -> np.ndarray:
        """Words with an out-of-fold verdict: every word (crossfit) or the held-out test words."""
        return np.flatnonzero(self.folds != TRAINING_ONLY)

    def fold_words(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.folds == fold)

    def training_words(self, fold: int) -> np.ndarray:
        """The words fold `fold`'s probe (and split latents) are fitted on."""
        return fold_training_words(self.folds, fold)

    def probe_true_positives(self, letter: int, fold: int | None = None) -> np.ndarray:
        """Measured words of this letter (of one fold, or all) that their out-of-fold probe classifies
        correctly: where absorption is measured."""
        words = self.measured if fold is None else self.fold_words(fold)
        return words[(self.prompts.labels[words] == letter) & (self.probe_logits[words, letter] > 0)]


def select_words(tokenizer, config: AbsorptionConfig):
    """(probe-train, measured) word pools: the 80/20 split (holdout) or every word in one pool (crossfit,
    whose folds are assigned after the prompts are built)."""
    words = task_vocabulary(tokenizer, get_task(config.task))
    if config.max_words is not None and config.max_words < len(words):
        words = random.Random(config.prompts.seed).sample(words, config.max_words)
    if config.split_mode == "crossfit":
        shuffled = list(words)
        random.Random(config.prompts.seed).shuffle(shuffled)
        return [], shuffled
    return split_words(words, config.prompts)


def assign_folds(prompts: PromptSet, config: AbsorptionConfig) -> np.ndarray:
    """[n] fold per word: seeded and balanced per letter (each letter's words dealt round-robin in a
    seeded order), so every fold's probe sees every letter; TRAINING_ONLY for holdout training words."""
    if config.split_mode == "holdout":
        return np.where(prompts.is_test, 0, TRAINING_ONLY)
    rng = np.random.default_rng(config.prompts.seed)
    folds = np.empty(len(prompts), dtype=np.int64)
    for letter in range(config.n_classes):
        members = rng.permutation(np.flatnonzero(prompts.labels == letter))
        folds[members] = (np.arange(len(members)) + letter) % config.n_folds
    return folds


def fold_training_words(folds: np.ndarray, fold: int) -> np.ndarray:
    """Holdout: the training-only words. Crossfit: every word of the other folds."""
    if (folds == TRAINING_ONLY).any():
        return np.flatnonzero(folds == TRAINING_ONLY)
    return np.flatnonzero(folds != fold)


def out_of_fold_logits(acts: np.ndarray, folds: np.ndarray, fold_probes: list[pr.LinearProbe],
                       display_probe: pr.LinearProbe) -> np.ndarray:
    """[n, 26]: each measured word scored by its own fold's probe; holdout training words by the probe
    they trained (in-sample, shown but never measured)."""
    logits = display_probe.logits(acts)
    for fold, probe in enumerate(fold_probes):
        words = np.flatnonzero(folds == fold)
        logits[words] = probe.logits(acts[words])
    return logits


def model_check_words(prompts: PromptSet, folds: np.ndarray, config: AbsorptionConfig) -> np.ndarray:
    """The words whose answer the model check reads: up to model_check_per_letter measured words a letter, taken
    from few prefix groups (a cluster sample: the words of a group are random) so few prefixes run."""
    rng = np.random.default_rng(config.prompts.seed)
    rank = prefix_order(prompts, config.ablation.seed)  # the ablation metric's order: their prefixes overlap
    chosen = []
    for letter in range(config.n_classes):
        members = np.flatnonzero((folds != TRAINING_ONLY) & (prompts.labels == letter))
        chosen.extend(prefix_clustered_sample(members, prompts, rank, config.model_check_per_letter, rng).tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def check_summary(prompts: PromptSet, chosen: np.ndarray, correct: np.ndarray, n_classes: int):
    """(accuracy per class, words checked per class, {word index: answered right}) from the checked words' answers."""
    checked = np.bincount(prompts.labels[chosen], minlength=n_classes)
    accuracy = np.bincount(prompts.labels[chosen], weights=correct, minlength=n_classes) / np.maximum(checked, 1)
    return accuracy, checked, {int(i): bool(c) for i, c in zip(chosen, correct)}


def model_check(model: HookedTransformer, prompts: PromptSet, folds: np.ndarray, letter_ids: list[int],
                config: AbsorptionConfig, stored_answers: dict[int, bool] | None = None):
    """The model's own answer (argmax over " A".." Z") on the model_check_words. `stored_answers` (token id -> right,
    from another hook's check in the same build: the same model and prompts, so the same answers) are used instead of
    running the model when they cover exactly these words."""
    chosen = model_check_words(prompts, folds, config)
    tokens = [prompts.words[i].token_id for i in chosen]
    if stored_answers is not None and set(tokens) == set(stored_answers):
        return check_summary(prompts, chosen, np.array([stored_answers[t] for t in tokens], dtype=bool), config.n_classes)
    logits = answer_logits(model, prompts, chosen, letter_ids, batch_size=max(1, config.batch_size // 2))
    return check_summary(prompts, chosen, logits.argmax(axis=1) == prompts.labels[chosen], config.n_classes)


@dataclass
class StoredProbes:
    """A probe run already in the database for the same config: its display probe and fold probes."""
    probe: pr.LinearProbe
    fold_probes: list[pr.LinearProbe]


def train_fold_probes(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray, config: AbsorptionConfig) -> list[pr.LinearProbe]:
    return [pr.train_letter_probe(acts[idx], labels[idx], config.probe, config.n_classes)
            for idx in (fold_training_words(folds, fold) for fold in range(config.fold_count))]


def display_probe(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray, fold_probes: list[pr.LinearProbe],
                  config: AbsorptionConfig) -> pr.LinearProbe:
    """Holdout: its one probe. Crossfit: a probe on every word, for what has no fold (decoder cosines on the
    Letter and Latent pages); no measured number uses it."""
    if config.split_mode == "holdout":
        return fold_probes[0]
    return pr.train_letter_probe(acts, labels, config.probe, config.n_classes)


def compute_hook_data(model: HookedTransformer, model_name: str, hook_name: str, layer: int,
                      config: AbsorptionConfig, stored: StoredProbes | None = None, log=print,
                      stored_answers: dict[int, bool] | None = None) -> HookProbeData:
    """The shared work at one hook. With `stored` (the probes already in the database for the same config),
    the probes are reused instead of retrained, so every SAE at the hook is measured against the same
    directions; the per-hook tables are then not rewritten and their extras are skipped."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    tokenizer = model.tokenizer
    train_words, measured_words = select_words(tokenizer, config)
    bos = tokenizer.bos_token_id if model.cfg.default_prepend_bos else None
    prompts = build_prompt_set(tokenizer, train_words, measured_words, config.prompts, config.share_prefix,
                               config.prefix_group_size, bos)
    folds = assign_folds(prompts, config)
    letter_ids = letter_token_ids(tokenizer, config.prompts)
    seconds["prompts"] = time.perf_counter() - t
    log(f"{hook_name}: {len(prompts)} words ({(folds != TRAINING_ONLY).sum()} measured in {config.fold_count} "
        f"fold(s), {config.split_mode}; {prompts.n_dropped} dropped), {len(prompts.prefixes)} prefixes")

    t = time.perf_counter()
    with fast_passes(model):
        acts = word_activations(model, prompts, hook_name, layer, batch_size=config.batch_size)
    seconds["activations"] = time.perf_counter() - t

    t = time.perf_counter()
    labels = prompts.labels
    if stored is not None:
        fold_probes, probe = stored.fold_probes, stored.probe
    else:
        fold_probes = [pr.as_stored(p) for p in train_fold_probes(acts, labels, folds, config)]
        probe = pr.as_stored(display_probe(acts, labels, folds, fold_probes, config))
    logits = out_of_fold_logits(acts, folds, fold_probes, probe)
    measured = np.flatnonzero(folds != TRAINING_ONLY)
    test_scores = pr.classifier_scores(logits[measured] > 0, labels[measured])
    aucs = pr.letter_aucs(logits[measured], labels[measured])
    seconds["probe"] = time.perf_counter() - t
    common = dict(model_name=model_name, hook_name=hook_name, layer=layer, prompts=prompts, acts=acts, folds=folds,
                  fold_probes=fold_probes, probe=probe, probe_logits=logits, test_scores=test_scores, aucs=aucs,
                  letter_ids=letter_ids, seconds=seconds)
    if stored is not None:
        n = config.n_classes
        return HookProbeData(**common, stability=np.full(n, np.nan), model_accuracy=np.zeros(n),
                             model_checked=np.zeros(n, dtype=np.int64), model_correct={}, neuron_baseline=[],
                             pca_baseline=[])
    t = time.perf_counter()
    train = fold_training_words(folds, 0)
    stability = pr.probe_stability(acts[train], labels[train], config.probe, config.n_classes)
    seconds["probe_stability"] = time.perf_counter() - t

    t = time.perf_counter()
    with fast_passes(model):
        accuracy, checked, correct = model_check(model, prompts, folds, letter_ids, config, stored_answers)
    seconds["model_check"] = time.perf_counter() - t

    t = time.perf_counter()
    # one split is enough for a baseline: fold 0's words against the words its probe was trained on
    test = np.flatnonzero(folds == 0)
    neuron = base.best_direction_baseline("neuron", acts[train], labels[train], acts[test], labels[test],
                                          n_classes=config.n_classes)
    pca_train, pca_test = base.pca_projections(acts[train], acts[test])
    pca = base.best_direction_baseline("pca", pca_train, labels[train], pca_test, labels[test],
                                       n_classes=config.n_classes)
    seconds["baselines"] = time.perf_counter() - t
    return HookProbeData(**common, stability=stability, model_accuracy=accuracy, model_checked=checked,
                         model_correct=correct, neuron_baseline=neuron, pca_baseline=pca)


def prefix_order(prompts: PromptSet, seed: int) -> np.ndarray:
    """[n_prefixes] a seeded rank per prefix group. Words fall into prefix groups at random (groups are
    consecutive chunks of a shuffled word list), so taking whole groups in this order is a cluster sample of
    the words; sharing the order between letters (and with the model check) makes their samples share
    prefixes, and each prefix's keys/values are computed once for all of them."""
    return np.random.default_rng(seed).permutation(len(prompts.prefixes))


def prefix_clustered_sample(pool: np.ndarray, prompts: PromptSet, rank: np.ndarray, size: int,
                            rng: np.random.Generator) -> np.ndarray:
    """At most `size` of `pool` (word indices): whole prefix groups in `rank` order, the last one cut at
    random."""
    shuffled = rng.permutation(pool)
    order = np.argsort(rank[prompts.prefix_index[shuffled]], kind="stable")
    return shuffled[order][:size]
