"""Logistic probes: the one-vs-rest class probe (26 letters for first_letter) and the L1 probe over SAE latents.

Both follow the references' recipe: Linear(d, n_classes), BCE-with-logits with per-class
pos_weight = negatives / positives, Adam, learning rate decaying exponentially per epoch.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.metrics import roc_auc_score

N_LETTERS = 26  # first_letter's classes; other tasks pass their own n_classes


@dataclass(frozen=True)
class ProbeConfig:
    epochs: int = 50
    lr: float = 1e-2  # decays exponentially to end_lr over the epochs
    end_lr: float = 1e-5
    weight_decay: float = 1e-4  # Adam weight decay (L2)
    batch_size: int = 4096  # the largest batch; smaller samples get smaller ones (batch_size_for)
    seed: int = 42
    # Adam moves a weight by about one learning rate per step, so 50 epochs of one 4,096-word batch cap every weight
    # near 0.077 and stop the probe early on small samples (docs/split_rule.md, bench/probe_steps.py). Each epoch
    # takes at least this many steps, on batches of at least min_batch_size words (SAEBench's probe uses 64).
    min_steps_per_epoch: int = 32
    min_batch_size: int = 64

    def batch_size_for(self, n_words: int) -> int:
        """The batch for n_words training words: batch_size, or smaller so each epoch takes min_steps_per_epoch."""
        wanted = -(-n_words // self.min_steps_per_epoch)
        return max(min(self.batch_size, wanted), min(self.min_batch_size, self.batch_size))


@dataclass(frozen=True)
class SparseProbeConfig:
    """The L1 probe over all SAE latents whose weights rank latents for k-sparse probing."""
    l1_coefficient: float = 0.01  # times the mean over letters of each letter's summed |weight|
    epochs: int = 50
    lr: float = 1e-2
    end_lr: float = 1e-5
    weight_decay: float = 1e-6
    batch_size: int = 4096
    seed: int = 42


@dataclass
class LinearProbe:
    weight: np.ndarray  # [n_classes, d]
    bias: np.ndarray  # [n_classes]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def directions(self) -> np.ndarray:
        """[26, d] unit probe directions."""
        return self.weight / np.maximum(np.linalg.norm(self.weight, axis=1, keepdims=True), 1e-12)


@dataclass
class ClassifierScores:
    precision: np.ndarray  # [26]
    recall: np.ndarray
    f1: np.ndarray
    n_positive: np.ndarray  # true members of each letter
    n_true_positive: np.ndarray


GLOBAL_RNG = threading.Lock()  # held while torch's global generator is seeded and read


def one_hot(labels: np.ndarray, n: int = N_LETTERS) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[labels]


def train_probe(x: np.ndarray | sp.csr_matrix, labels: np.ndarray, epochs: int, lr: float, end_lr: float,
                weight_decay: float, batch_size: int, seed: int, l1_coefficient: float = 0.0,
                n_classes: int = N_LETTERS) -> LinearProbe:
    """One-vs-rest logistic probe for n_classes classes on x [n, d] with integer labels [n]. A scipy CSR x (SAE
    codes: a few dozen of thousands of latents active) runs each batch as a sparse matmul, the same
    optimisation at a fraction of the dense cost."""
    generator = torch.Generator().manual_seed(seed)
    sparse = sp.issparse(x)
    xs = sp.csr_matrix(x, dtype=np.float32) if sparse else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ys = torch.from_numpy(one_hot(labels, n_classes))
    positives = ys.sum(0)
    pos_weight = (len(ys) - positives) / positives.clamp(min=1.0)
    with GLOBAL_RNG:  # the layer's initial weights come from torch's global generator: probes trained in threads take turns
        torch.manual_seed(seed)
        layer = torch.nn.Linear(xs.shape[1], n_classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(end_lr / lr) ** (1 / epochs))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    for _ in range(epochs):
        for batch in torch.randperm(xs.shape[0], generator=generator).split(batch_size):
            if sparse:
                logits = sparse_logits(xs, batch.numpy(), layer)
            else:
                logits = layer(xs[batch])
            loss = loss_fn(logits, ys[batch])
            if l1_coefficient:
                loss = loss + l1_coefficient * layer.weight.abs().sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    return LinearProbe(layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())


def torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR matrix as a torch CSR tensor (sharing nothing it needs to copy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), matrix.shape,
                                       check_invariants=False)  # scipy's CSR: canonical already


class CsrRowsTimesWeight(torch.autograd.Function):
    """rows [b, d] (CSR) @ weight.T [d, n_classes], whose backward (the weight's gradient, rows^T @ grad) reads the
    rows' transpose, also CSR, made by scipy once per batch. Torch's own CSR backward transposes on every call, and
    COO is slower still: the whole-vocabulary k-sparse stage of the 4k-k32 took 34.9 s with COO batches, and the
    same sums come out (bench/ksparse_speed.py)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, rows_t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.rows_t = rows_t
        return rows @ weight.T  # [b, n_classes]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # grad [b, n_classes]
        return None, None, (ctx.rows_t @ grad).T  # [n_classes, d]


def sparse_logits(matrix: sp.csr_matrix, rows: np.ndarray, layer: torch.nn.Linear) -> torch.Tensor:
    """[len(rows), n_classes] the probe's logits on those rows of a CSR matrix."""
    picked = matrix[rows]
    return CsrRowsTimesWeight.apply(torch_csr(picked), torch_csr(picked.T.tocsr()), layer.weight) + layer.bias


PROBE_DECIMALS = 6  # the database stores probe weights to this many decimals (tables.py: float_list(weight, 6))


def as_stored(probe: LinearProbe) -> LinearProbe:
    """The probe as the database keeps it (weights rounded to PROBE_DECIMALS, float32). A build measures its first
    SAE with this, so that the SAEs a later build adds at the hook, which read the stored probe, see the same one."""
    return LinearProbe(np.round(probe.weight.astype(np.float64), PROBE_DECIMALS).astype(np.float32),
                       probe.bias.astype(np.float32))


def train_letter_probe(x: np.ndarray, labels: np.ndarray, config: ProbeConfig = ProbeConfig(),
                       n_classes: int = N_LETTERS) -> LinearProbe:
    return train_probe(x, labels, config.epochs, config.lr, config.end_lr, config.weight_decay,
                       config.batch_size_for(len(labels)), config.seed, n_classes=n_classes)


def train_sparse_probe(codes: np.ndarray | sp.csr_matrix, labels: np.ndarray, config: SparseProbeConfig = SparseProbeConfig(),
                       n_classes: int = N_LETTERS) -> LinearProbe:
    return train_probe(codes, labels, config.epochs, config.lr, config.end_lr, config.weight_decay, config.batch_size,
                       config.seed, l1_coefficient=config.l1_coefficient, n_classes=n_classes)


def classifier_scores(predicted: np.ndarray, labels: np.ndarray) -> ClassifierScores:
    """predicted [n, n_classes] bool (one-vs-rest decisions), labels [n]."""
    n_classes = predicted.shape[1]
    truth = one_hot(labels, n_classes).astype(bool)
    tp = (predicted & truth).sum(0).astype(np.float64)
    n_pred = predicted.sum(0)
    n_pos = truth.sum(0)
    precision = np.divide(tp, n_pred, out=np.zeros(n_classes), where=n_pred > 0)
    recall = np.divide(tp, n_pos, out=np.zeros(n_classes), where=n_pos > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_classes), where=(precision + recall) > 0)
    return ClassifierScores(precision, recall, f1, n_pos.astype(np.int64), tp.astype(np.int64))


def letter_aucs(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    truth = one_hot(labels, logits.shape[1]).astype(bool)
    return np.array([roc_auc_score(truth[:, j], logits[:, j]) if 0 < truth[:, j].sum() < len(truth) else np.nan
                     for j in range(logits.shape[1])])


def probe_stability(x: np.ndarray, labels: np.ndarray, config: ProbeConfig = ProbeConfig(),
                    n_classes: int = N_LETTERS) -> np.ndarray:
    """[n_classes] cosine between the probe directions trained on two disjoint halves of the training words:
    how much a letter's direction depends on which words it was trained on."""
    order = np.random.default_rng(config.seed).permutation(len(x))
    halves = np.array_split(order, 2)
    first, second = (train_letter_probe(x[h], labels[h], config, n_classes).directions() for h in halves)
    return (first * second).sum(axis=1)
