"""The split-latent rule (precompute/absorption/ksparse.py): candidates ranked by their own F1 ("f1", the default) or by
the L1 probe's weight ("l1", SAEBench's). The F1 rule's first pick is each class's best single latent, so it cannot
start from a near-useless one (docs/split_rule.md measures how often the L1 rule does)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr

N_CLASSES = 4
MAIN, RARE = 0, 1  # the planted latents of class 0


def planted_codes(n: int = 4000, d_sae: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[n, d_sae] codes, [n] labels: latent MAIN fires on 90 % of class 0's words (and 3 % of the others), latent RARE
    on 2 % of class 0's words only, ten times as strongly; latents 2.. fire at random on every class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=n)
    codes = np.zeros((n, d_sae), dtype=np.float32)
    ours = labels == 0
    codes[:, MAIN] = np.where((ours & (rng.random(n) < 0.9)) | (~ours & (rng.random(n) < 0.03)), 5.0, 0.0)
    codes[:, RARE] = np.where(ours & (rng.random(n) < 0.02), 50.0, 0.0)
    noise = rng.random((n, d_sae - 2)) < 0.1
    codes[:, 2:] = noise * rng.uniform(1, 5, size=(n, d_sae - 2))
    return codes, labels


def brute_force_f1(codes: np.ndarray, labels: np.ndarray, latent: int, cls: int) -> float:
    predicted, truth = codes[:, latent] > 0, labels == cls
    tp = (predicted & truth).sum()
    return 0.0 if tp == 0 else 2 * tp / (predicted.sum() + truth.sum())


@pytest.mark.parametrize("sparse", [False, True])
def test_single_latent_f1_is_each_latent_s_f1_as_an_active_classifier(sparse):
    codes, labels = planted_codes(n=600)
    got = ks.single_latent_f1(sp.csr_matrix(codes) if sparse else codes, labels, N_CLASSES)
    want = np.array([[brute_force_f1(codes, labels, i, j) for j in range(N_CLASSES)] for i in range(codes.shape[1])])
    np.testing.assert_allclose(got, want, atol=1e-6)


def split_of_class_0(rule: str) -> ks.LetterSplit:
    codes, labels = planted_codes(n=2000)
    train, test = slice(0, 1500), slice(1500, None)
    sparse_probe = pr.train_sparse_probe(sp.csr_matrix(codes[train]), labels[train], n_classes=N_CLASSES)
    return ks.k_sparse_probing(sparse_probe, codes[train], labels[train], codes[test], labels[test],
                               ks.KSparseConfig(rule=rule, max_k=3))[0]


def test_the_f1_rule_ranks_the_broad_latent_first_and_keeps_it_in_the_split_latents():
    split = split_of_class_0("f1")
    assert split.fits[0].latents == [MAIN]
    assert split.fits[0].f1 > 0.8
    assert MAIN in split.split_latents


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_f1_rule_s_first_pick_is_each_class_s_best_single_latent_on_the_training_words(seed):
    """What makes the F1 rule unable to pick a near-useless latent first: its k = 1 is, for every class, the latent
    with the highest F1 on the words the split latents are chosen on."""
    codes, labels = planted_codes(n=2000, seed=seed)
    codes[:, 2:] *= np.random.default_rng(seed).random(codes.shape[1] - 2) < 0.5  # some noise latents never fire
    sparse_probe = pr.train_sparse_probe(sp.csr_matrix(codes[:1500]), labels[:1500], n_classes=N_CLASSES)
    splits = ks.k_sparse_probing(sparse_probe, codes[:1500], labels[:1500], codes[1500:], labels[1500:],
                                 ks.KSparseConfig(rule="f1", max_k=3))
    best = ks.single_latent_f1(codes[:1500], labels[:1500], N_CLASSES).argmax(axis=0)
    assert [split.fits[0].latents[0] for split in splits] == best.tolist()
    assert all(split.split_latents[0] == split.fits[0].latents[0] for split in splits)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="split-latent rule"):
        ks.KSparseConfig(rule="best")
    assert ks.KSparseConfig().rule == "guarded" and ks.KSparseConfig().other_rule == "l1"
    assert ks.KSparseConfig(rule="l1").other_rule == "guarded" and ks.KSparseConfig(rule="f1").other_rule == "l1"


def test_the_guarded_rule_keeps_saebench_s_split_latents_unless_the_main_latent_alone_beats_them():
    """Per class: SAEBench's (L1) split latents, unless they leave out the class's main latent and a k-sparse probe on
    the main latent alone beats theirs by more than tau; then the main latent first, then SAEBench's ranking. Planted:
    the L1 probe is made to rank class 0's rare latent and its copy first, so its split latents are the rare latent
    alone."""
    codes, labels = planted_codes(n=2000, seed=4)
    twin = codes.shape[1] - 1
    codes[:, twin] = codes[:, RARE]  # a copy of the rare latent: adding it adds nothing, so the tau rule stops there
    train, test = slice(0, 1500), slice(1500, None)
    sparse_probe = pr.train_sparse_probe(sp.csr_matrix(codes[train]), labels[train], n_classes=N_CLASSES)
    sparse_probe.weight[0, [RARE, twin]] = sparse_probe.weight[0].max() + np.array([2.0, 1.0])  # ranked first
    config = ks.KSparseConfig(max_k=3)
    mains = ks.single_latent_f1(codes[train], labels[train], N_CLASSES).argmax(axis=0).tolist()  # MAIN for class 0
    assert mains[0] == MAIN

    def splits(rule: str) -> list[ks.LetterSplit]:
        return ks.k_sparse_probing(sparse_probe, codes[train], labels[train], codes[test], labels[test], config,
                                   rule=rule, main_latents=mains)

    l1, guarded = splits("l1"), splits("guarded")
    assert l1[0].split_latents == [RARE]
    assert ks.loses_to_main_latent(l1[0], MAIN, codes[train], labels[train], codes[test], labels[test], config,
                                   N_CLASSES)
    assert guarded[0].split_latents[0] == MAIN and guarded[0].fits[0].latents == [MAIN]
    for j in range(1, N_CLASSES):
        loses = ks.loses_to_main_latent(l1[j], mains[j], codes[train], labels[train], codes[test], labels[test],
                                        config, N_CLASSES)
        assert (guarded[j].split_latents == l1[j].split_latents) != loses
        assert not loses or guarded[j].split_latents[0] == mains[j]


def test_the_guarded_rule_needs_the_main_latents():
    codes, labels = planted_codes(n=400)
    sparse_probe = pr.train_sparse_probe(sp.csr_matrix(codes), labels, n_classes=N_CLASSES)
    with pytest.raises(ValueError, match="main latent"):
        ks.k_sparse_probing(sparse_probe, codes, labels, codes, labels, ks.KSparseConfig(max_k=2))
