"""Single-direction baselines (Cunningham et al.): how well the best single residual neuron, the best
PCA direction or the best SAE latent classifies each first letter, next to the probe.

Every candidate direction is a one-dimensional classifier "value >= threshold" (neurons and PCA
directions in both signs; SAE latents as "active", value > 0). The direction and threshold are chosen
by F1 on the probe-training words and scored on the test words, so no baseline sees the test set.
For neurons and PCA directions the threshold search runs on the 16 most separating columns per letter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from precompute.absorption.codes import Codes, columns
from precompute.absorption.probe import N_LETTERS, classifier_scores, one_hot


@dataclass
class BaselineScore:
    kind: str  # 'neuron' | 'pca' | 'latent'
    letter: int
    index: int  # neuron / principal component / latent
    sign: int  # +1: high values mean "this letter"; -1: low values do
    threshold: float
    precision: float
    recall: float
    f1: float


def candidate_columns(values: torch.Tensor, y: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """[n_candidates, 26] the columns whose letter members stand out most (standardised mean
    difference): the exhaustive threshold search below only runs on these."""
    positives = y.sum(0).clamp(min=1)  # [26]
    mean_pos = (values.T @ y) / positives  # [m, 26]
    mean_neg = (values.T @ (1 - y)) / (len(y) - positives).clamp(min=1)
    separation = (mean_pos - mean_neg) / values.std(dim=0).clamp(min=1e-6)[:, None]
    return separation.topk(min(n_candidates, values.shape[1]), dim=0).indices


def best_thresholds(values: np.ndarray, labels: np.ndarray, n_candidates: int = 16,
                    n_classes: int = N_LETTERS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each letter, the column and threshold t whose rule 'value >= t' has the best train F1
    among the most separating candidate columns. Returns (column [26], threshold [26], f1 [26])."""
    y = torch.from_numpy(one_hot(labels, n_classes))  # [n, n_classes]
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    candidates = candidate_columns(x, y, n_candidates)  # [c, 26]
    predicted = torch.arange(1, len(x) + 1, dtype=torch.float32)[:, None]  # [n, 1]
    columns, thresholds, scores = np.zeros(n_classes, dtype=np.int64), np.zeros(n_classes), np.zeros(n_classes)
    for letter in range(n_classes):
        sorted_x, order = x[:, candidates[:, letter]].sort(dim=0, descending=True)  # [n, c]
        tp = y[:, letter][order].cumsum(dim=0)  # true positives when the top i+1 are predicted
        f1 = 2 * tp / (predicted + y[:, letter].sum())
        # a cut is only valid where the next value differs (ties are predicted together)
        valid = torch.ones_like(sorted_x, dtype=torch.bool)
        valid[:-1] = sorted_x[:-1] != sorted_x[1:]
        f1 = torch.where(valid, f1, torch.zeros(()))
        flat = int(f1.argmax())
        row, col = divmod(flat, f1.shape[1])
        columns[letter] = int(candidates[col, letter])
        thresholds[letter] = float(sorted_x[row, col])
        scores[letter] = float(f1[row, col])
    return columns, thresholds, scores


def best_direction_baseline(kind: str, train_values: np.ndarray, train_labels: np.ndarray, test_values: np.ndarray,
                            test_labels: np.ndarray, signed: bool = True, n_classes: int = N_LETTERS) -> list[BaselineScore]:
    """Best single column per letter (chosen on train), scored on test."""
    m = train_values.shape[1]
    train = np.concatenate([train_values, -train_values], axis=1) if signed else train_values
    test = np.concatenate([test_values, -test_values], axis=1) if signed else test_values
    best, thresholds, _ = best_thresholds(train, train_labels, n_classes=n_classes)
    decisions = np.stack([test[:, best[j]] >= thresholds[j] for j in range(n_classes)], axis=1)
    scores = classifier_scores(decisions, test_labels)
    return [BaselineScore(kind, j, int(best[j] % m), -1 if best[j] >= m else 1, float(thresholds[j]),
                          float(scores.precision[j]), float(scores.recall[j]), float(scores.f1[j])) for j in range(n_classes)]


def pca_projections(train_acts: np.ndarray, test_acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets projected on the principal directions of the centred training activations."""
    mean = train_acts.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(train_acts - mean, full_matrices=False)  # [d, d] rows = directions
    return (train_acts - mean) @ components.T, (test_acts - mean) @ components.T


def active_counts(codes: Codes, labels: np.ndarray, n_classes: int = N_LETTERS) -> tuple[torch.Tensor, torch.Tensor]:
    """(words of each letter where each latent is active [d_sae, 26], words where it is active [d_sae]),
    float32 counts (exact below 2^24 words), from dense or CSR codes without a dense [n, d_sae] copy."""
    if not sp.issparse(codes):
        active = torch.from_numpy(codes > 0).float()  # [n, d_sae]
        return active.T @ torch.from_numpy(one_hot(labels, n_classes)), active.sum(0)
    active = (codes > 0).astype(np.float32)  # CSR [n, d_sae]
    tp = np.asarray(active.T @ one_hot(labels, n_classes), dtype=np.float32)  # [d_sae, 26]
    return torch.from_numpy(tp), torch.from_numpy(np.asarray(active.sum(axis=0), dtype=np.float32).reshape(-1))


def best_active_latent(train_codes: Codes, train_labels: np.ndarray, test_codes: Codes,
                       test_labels: np.ndarray, n_classes: int = N_LETTERS) -> list[BaselineScore]:
    """The latent whose 'active' (> 0) best classifies each letter on train words, scored on test."""
    y = torch.from_numpy(one_hot(train_labels, n_classes))
    tp, n_active = active_counts(train_codes, train_labels, n_classes)  # [d_sae, 26], [d_sae]
    f1 = (2 * tp / (n_active[:, None] + y.sum(0)[None, :]).clamp(min=1)).numpy()
    best = f1.argmax(axis=0)
    scores = classifier_scores(columns(test_codes, best) > 0, test_labels)
    return [BaselineScore("latent", j, int(best[j]), 1, 0.0, float(scores.precision[j]), float(scores.recall[j]),
                          float(scores.f1[j])) for j in range(n_classes)]
