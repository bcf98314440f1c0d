"""Cross-fitting: every word gets a verdict from a probe that never saw it, folds are balanced per letter,
and the headline intervals widen when folds disagree (they cover the probe, not only the words)."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.absorption import probe as pr
from precompute.absorption.config import TRAINING_ONLY, AbsorptionConfig
from precompute.absorption.hook import assign_folds, fold_training_words, out_of_fold_logits
from precompute.absorption.measure import modal
from precompute.absorption.prompts import PromptSet
from precompute.absorption.stats import (
    BootstrapConfig,
    between_fold_sd,
    fold_and_word_intervals,
    letter_and_overall_intervals,
)


def prompt_set(labels: np.ndarray, is_test: np.ndarray | None = None) -> PromptSet:
    n = len(labels)
    return PromptSet(words=[None] * n, labels=labels, is_test=np.ones(n, bool) if is_test is None else is_test,
                     prefixes=[[0]], prefix_index=np.zeros(n, dtype=np.int64), tail_ids=[], n_dropped=0)


def test_folds_cover_every_word_once_and_balance_each_letter():
    labels = np.random.default_rng(1).integers(0, 26, size=2_003)
    folds = assign_folds(prompt_set(labels), AbsorptionConfig(n_folds=5))
    assert set(folds) == set(range(5))
    for letter in range(26):
        sizes = np.bincount(folds[labels == letter], minlength=5)
        assert sizes.max() - sizes.min() <= 1  # dealt round-robin: no fold lacks a letter another fold has
    assert np.array_equal(folds, assign_folds(prompt_set(labels), AbsorptionConfig(n_folds=5)))  # seeded


def test_holdout_mode_keeps_saebench_training_words_out_of_every_fold():
    labels = np.arange(10) % 26
    is_test = np.array([True, False] * 5)
    folds = assign_folds(prompt_set(labels, is_test), AbsorptionConfig(split_mode="holdout"))
    assert list(folds) == [0, TRAINING_ONLY] * 5
    assert list(fold_training_words(folds, 0)) == [1, 3, 5, 7, 9]


def test_a_folds_probe_never_trains_on_its_own_words():
    folds = np.array([0, 1, 2, 0, 1, 2])
    for fold in range(3):
        assert not set(fold_training_words(folds, fold)) & set(np.flatnonzero(folds == fold))


def test_each_word_is_scored_by_its_own_folds_probe():
    acts = np.eye(4, dtype=np.float32)
    folds = np.array([0, 1, 0, 1])
    probes = [pr.LinearProbe(np.full((26, 4), float(f + 1), np.float32), np.zeros(26, np.float32)) for f in range(2)]
    shown = pr.LinearProbe(np.full((26, 4), 100.0, np.float32), np.zeros(26, np.float32))
    logits = out_of_fold_logits(acts, folds, probes, shown)
    assert list(logits[:, 0]) == [1.0, 2.0, 1.0, 2.0]  # fold 0's probe for words 0, 2; fold 1's for 1, 3


def test_invalid_split_modes_are_refused():
    with pytest.raises(ValueError):
        AbsorptionConfig(split_mode="kfold")
    with pytest.raises(ValueError):
        AbsorptionConfig(n_folds=1)


def test_modal_choice_and_its_share():
    assert modal([(3,), (4,), (3,)]) == ((3,), pytest.approx(2 / 3))
    assert modal([(1, 2), (5,)]) == ((1, 2), 0.5)  # a tie goes to the earliest fold


def test_one_fold_gives_the_word_bootstrap():
    values = {0: np.linspace(0, 1, 50), 1: np.linspace(0.2, 0.4, 30)}
    cfg = BootstrapConfig(n_resamples=400)
    letters, overall = fold_and_word_intervals({j: [v] for j, v in values.items()}, [0, 1], cfg)
    plain_letters, plain = letter_and_overall_intervals(values, [0, 1], cfg)
    assert overall.value == pytest.approx(plain.value)
    assert overall.high - overall.low == pytest.approx(plain.high - plain.low, rel=0.25)


def test_intervals_widen_when_folds_disagree():
    """Each fold alone is certain (all its words agree), but the folds disagree: a word-only bootstrap gives
    a near-zero width, the fold-and-word bootstrap covers the spread between folds."""
    disagree = {0: [np.zeros(40), np.ones(40), np.zeros(40), np.ones(40), np.zeros(40)]}
    agree = {0: [np.full(40, 0.4)] * 5}
    cfg = BootstrapConfig(n_resamples=500)
    _, wide = fold_and_word_intervals(disagree, [0], cfg)
    _, narrow = fold_and_word_intervals(agree, [0], cfg)
    _, words_only = letter_and_overall_intervals({0: np.concatenate(disagree[0])}, [0], cfg)
    assert wide.value == pytest.approx(0.4)
    assert wide.high - wide.low > 0.5
    assert words_only.high - words_only.low < 0.2
    assert narrow.high - narrow.low == pytest.approx(0.0)
    assert between_fold_sd(disagree, [0]) == pytest.approx(np.std([0, 1, 0, 1, 0], ddof=1))
    assert np.isnan(between_fold_sd({0: [np.ones(3)]}, [0]))


def test_early_stopped_k_sparse_probing_selects_the_same_split_latents():
    """Every fold stops fitting at the first k the tau rule rejects: the same split latents as all k up to max_k."""
    from precompute.absorption import ksparse as ks

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 26, size=600)
    codes = np.maximum(rng.normal(size=(600, 40)), 0).astype(np.float32)
    codes[np.arange(600), labels] += 3.0  # latent j ~ letter j, plus a weaker second latent per letter
    codes[np.arange(600), 26 + labels % 14] += rng.random(600).astype(np.float32)
    sparse = pr.LinearProbe(rng.normal(size=(26, 40)).astype(np.float32), np.zeros(26, np.float32))
    sparse.weight[np.arange(26), np.arange(26)] = 5.0
    full = ks.k_sparse_probing(sparse, codes[:400], labels[:400], codes[400:], labels[400:], ks.KSparseConfig(max_k=4, rule="l1"))
    short = ks.k_sparse_probing(sparse, codes[:400], labels[:400], codes[400:], labels[400:], ks.KSparseConfig(max_k=4, rule="l1"),
                                full_curve=False)
    assert [s.split_latents for s in full] == [s.split_latents for s in short]
    assert sum(len(s.fits) for s in short) < sum(len(s.fits) for s in full)
