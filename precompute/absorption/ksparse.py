"""k-sparse probing over SAE latents, split latents and the main latent per letter."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from precompute.absorption.codes import Codes, columns
from precompute.absorption.probe import N_LETTERS, LinearProbe, classifier_scores
from precompute.absorption.projection import select_split_latents


@dataclass(frozen=True)
class KSparseConfig:
    max_k: int = 10  # k = 1..max_k (SAEBench's max_k_value)
    split_tau: float = 0.03  # F1 jump that accepts one more split latent (SAEBench f1_jump_threshold)
    max_iter: int = 500  # LogisticRegression(max_iter, class_weight="balanced") per k


@dataclass
class KSparseFit:
    letter: int
    k: int
    latents: list[int]  # ranked by the L1 probe's positive weight
    weights: list[float]
    bias: float
    precision: float
    recall: float
    f1: float


@dataclass
class LetterSplit:
    letter: int
    fits: list[KSparseFit]  # k = 1..max_k
    split_latents: list[int]

    @property
    def split_fit(self) -> KSparseFit:
        """The k-sparse probe with k = number of split latents (the paper's candidate filter)."""
        return self.fits[len(self.split_latents) - 1]


def ranked_latents(sparse_probe: LinearProbe, letter: int, max_k: int) -> list[int]:
    """Latents by positive L1-probe weight, highest first (negative weights never rank)."""
    weights = sparse_probe.weight[letter]
    order = np.argsort(-weights, kind="stable")[:max_k]
    return [int(i) for i in order if weights[i] > 0]


def fit_k_sparse(train_codes: Codes, train_labels: np.ndarray, test_codes: Codes,
                 test_labels: np.ndarray, letter: int, latents: list[int], config: KSparseConfig,
                 n_classes: int = N_LETTERS) -> KSparseFit:
    y_train = train_labels == letter
    if y_train.all() or not y_train.any():  # too few words to have both classes: a probe that never fires
        return KSparseFit(letter, len(latents), list(latents), [0.0] * len(latents), -1.0, 0.0, 0.0, 0.0)
    classifier = LogisticRegression(max_iter=config.max_iter, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(columns(train_codes, latents), y_train)
    predicted = classifier.decision_function(columns(test_codes, latents)) > 0
    decisions = np.zeros((len(test_labels), n_classes), dtype=bool)
    decisions[:, letter] = predicted
    scores = classifier_scores(decisions, test_labels)
    return KSparseFit(letter, len(latents), list(latents), classifier.coef_[0].tolist(), float(classifier.intercept_[0]),
                      float(scores.precision[letter]), float(scores.recall[letter]), float(scores.f1[letter]))


def k_sparse_probing(sparse_probe: LinearProbe, train_codes: Codes, train_labels: np.ndarray,
                     test_codes: Codes, test_labels: np.ndarray, config: KSparseConfig = KSparseConfig(),
                     full_curve: bool = True) -> list[LetterSplit]:
    """For each letter: fits for k = 1..max_k on the top-k latents, and the split latents (tau rule). Without
    full_curve the fits stop at the first k the tau rule rejects: the same split latents, fewer fits (the
    curve past that k is only shown, and cross-fitting shows one fold's)."""
    results = []
    n_classes = sparse_probe.weight.shape[0]
    for letter in range(n_classes):
        ranking = ranked_latents(sparse_probe, letter, config.max_k)
        if not ranking:  # no latent has a positive weight: fall back to the single strongest one
            ranking = [int(np.argmax(sparse_probe.weight[letter]))]
        fits: list[KSparseFit] = []
        for k in range(1, len(ranking) + 1):
            fits.append(fit_k_sparse(train_codes, train_labels, test_codes, test_labels, letter, ranking[:k], config,
                                     n_classes))
            if not full_curve and len(select_split_latents([f.f1 for f in fits], ranking, config.split_tau)) < k:
                break
        split = select_split_latents([f.f1 for f in fits], ranking, config.split_tau)
        results.append(LetterSplit(letter, fits, split))
    return results


def k_sparse_decision(fit: KSparseFit, codes: Codes) -> np.ndarray:
    """[n] bool: the fitted k-sparse probe says 'this letter'."""
    return columns(codes, fit.latents) @ np.asarray(fit.weights) + fit.bias > 0


@dataclass
class MainLatent:
    letter: int
    latent: int
    encoder_cos: float
    precision: float
    recall: float
    f1: float


def main_latents(encoder_cos: np.ndarray, test_codes: Codes, test_labels: np.ndarray) -> list[MainLatent]:
    """Per letter, the latent whose encoder row is closest to the probe direction, scored as a
    classifier that says 'this letter' whenever the latent is active (> 0). encoder_cos [d_sae, n_classes]."""
    best = encoder_cos.argmax(axis=0)  # [n_classes]
    decisions = columns(test_codes, best) > 0  # [n, n_classes]
    scores = classifier_scores(decisions, test_labels)
    return [MainLatent(j, int(best[j]), float(encoder_cos[best[j], j]), float(scores.precision[j]),
                       float(scores.recall[j]), float(scores.f1[j])) for j in range(len(best))]
