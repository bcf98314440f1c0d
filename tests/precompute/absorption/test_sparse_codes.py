"""Word codes kept sparse (CSR) give every per-SAE number the dense codes gave: k-sparse probing, split and main
latents, the projection metric, the ablation metric's candidates and verdicts, and the best-latent baseline, on a
planted case with absorption, split latents and zero-projection ties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from precompute.absorption import ablation as abl
from precompute.absorption import baselines as base
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.codes import encode_words, gather
from precompute.absorption.config import AbsorptionConfig
from precompute.absorption.hook import HookProbeData, assign_folds
from precompute.absorption.measure import SAEWeights, combine_folds, measure_fold, row_cosines, row_norms, unit_rows
from precompute.absorption.projection import ProjectionMetricConfig, projection_absorption
from precompute.absorption.prompts import PromptSet
from precompute.absorption.stats import BootstrapConfig

D_MODEL, D_SAE, SPLIT_S = 32, 80, 40
ABSORBERS = np.arange(60, 68)  # each absorbs latent 0 on one 'a' word


def planted_words(n: int = 26 * 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [n, D_SAE], labels [n], W_dec [D_SAE, D_MODEL]): latent j fires on letter j; 's' is split over
    latents 18 and 40; on eight 'a' words one of ABSORBERS (decoders close to latent 0's), a different one
    each, fires instead of latent 0; plus sparse noise over every latent."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 26
    codes = (rng.random((n, D_SAE)) < 0.03) * rng.random((n, D_SAE))
    codes[np.arange(n), labels] = 1.0 + rng.random(n)
    s_words = np.flatnonzero(labels == 18)
    codes[s_words[::2], 18], codes[s_words[::2], SPLIT_S] = 0.0, 1.0 + rng.random(len(s_words[::2]))
    a_words = np.flatnonzero(labels == 0)
    codes[a_words[: len(ABSORBERS)], 0], codes[a_words[: len(ABSORBERS)], ABSORBERS] = 0.0, 2.0
    W_dec = unit_rows(rng.normal(size=(D_SAE, D_MODEL)))
    W_dec[ABSORBERS] = unit_rows(W_dec[0] + 0.5 * W_dec[ABSORBERS])
    return codes.astype(np.float32), labels, W_dec.astype(np.float32)


def planted_hook(codes: np.ndarray, labels: np.ndarray, W_dec: np.ndarray, config: AbsorptionConfig) -> HookProbeData:
    rng = np.random.default_rng(1)
    n = len(labels)
    acts = (codes @ W_dec + 0.05 * rng.normal(size=(n, D_MODEL))).astype(np.float32)
    directions = W_dec[:26].copy()
    directions[18] = W_dec[18] + W_dec[SPLIT_S]
    probe = pr.LinearProbe(directions.astype(np.float32), np.full(26, -0.3, np.float32))
    prompts = PromptSet(words=[None] * n, labels=labels, is_test=np.ones(n, bool), prefixes=[[0]],
                        prefix_index=np.zeros(n, dtype=np.int64), tail_ids=[], n_dropped=0)
    folds = assign_folds(prompts, config)
    nothing = np.zeros(26)
    scores = pr.classifier_scores(probe.logits(acts) > 0, labels)
    return HookProbeData("tiny", "hook", 0, prompts, acts, folds, [probe] * config.fold_count, probe, probe.logits(acts),
                         scores, nothing, nothing, nothing, nothing, {}, [], [], list(range(26)), {})


class FoldedSAE:
    """What SAEWeights.of reads: a decoder and an encoder."""

    def __init__(self, W_dec: np.ndarray, seed: int = 2) -> None:
        self.W_dec = torch.from_numpy(W_dec)
        noise = np.random.default_rng(seed).normal(scale=0.3, size=W_dec.shape).astype(np.float32)
        self.W_enc = torch.from_numpy((W_dec + noise).T.copy())


@pytest.fixture(scope="module")
def planted():
    config = AbsorptionConfig(n_folds=3, sparse_probe=pr.SparseProbeConfig(batch_size=128, epochs=30),
                              k_sparse=ks.KSparseConfig(max_k=4), run_ablation_metric=False,
                              bootstrap=BootstrapConfig(n_resamples=50))
    codes, labels, W_dec = planted_words()
    hook = planted_hook(codes, labels, W_dec, config)
    weights = SAEWeights.of(FoldedSAE(W_dec))
    dense = [measure_fold(fold, codes, weights, hook, config) for fold in range(config.fold_count)]
    sparse = [measure_fold(fold, sp.csr_matrix(codes), weights, hook, config) for fold in range(config.fold_count)]
    return config, codes, hook, weights, dense, sparse


def assert_same_fold(a, b) -> None:
    assert a.split.split_latents == b.split.split_latents
    assert [f.latents for f in a.split.fits] == [f.latents for f in b.split.fits]
    np.testing.assert_allclose([f.f1 for f in a.split.fits], [f.f1 for f in b.split.fits])
    np.testing.assert_allclose(np.concatenate([f.weights for f in a.split.fits]),
                               np.concatenate([f.weights for f in b.split.fits]), rtol=1e-6, atol=1e-8)
    assert a.main == b.main
    assert np.array_equal(a.true_positives, b.true_positives)
    for field in ("probe_projection", "split_projection", "absorber_projection", "absorption_fraction",
                  "top_projections"):
        np.testing.assert_allclose(getattr(a.projection, field), getattr(b.projection, field), rtol=1e-6)
    assert np.array_equal(a.projection.is_full_absorption, b.projection.is_full_absorption)
    assert np.array_equal(a.projection.top_latents, b.projection.top_latents)
    np.testing.assert_array_equal(a.split_acts, b.split_acts)
    np.testing.assert_array_equal(a.top_acts, b.top_acts)
    np.testing.assert_array_equal(a.decoder_cos, b.decoder_cos)
    assert np.array_equal(a.candidates, b.candidates)


def test_sparse_word_codes_measure_every_fold_as_dense_codes_do(planted):
    _, _, _, _, dense, sparse = planted
    for dense_fold, sparse_fold in zip(dense, sparse):
        for a, b in zip(dense_fold, sparse_fold):
            assert_same_fold(a, b)
    letter_s = [fold[18] for fold in sparse]
    assert all(sorted(f.split.split_latents) == [18, SPLIT_S] for f in letter_s)  # the planted split is found
    letter_a = [fold[0] for fold in sparse]
    assert sum(f.projection.is_full_absorption.sum() for f in letter_a) > 0  # and the planted absorber
    assert any(set(ABSORBERS) & set(f.projection.top_latents[:, 0]) for f in letter_a)


def test_sparse_word_codes_give_the_same_main_latent_and_baseline(planted):
    config, codes, hook, weights, dense, sparse = planted
    encoder_cos = row_cosines(weights.W_enc_rows, hook.probe.directions())
    csr = sp.csr_matrix(codes)
    labels = hook.prompts.labels
    train, test = hook.training_words(0), hook.fold_words(0)
    best_dense = base.best_active_latent(codes[train], labels[train], codes[test], labels[test])
    best_sparse = base.best_active_latent(csr[train], labels[train], csr[test], labels[test])
    assert best_dense == best_sparse
    for j in range(26):
        a = combine_folds(j, [fold[j] for fold in dense], encoder_cos, codes, hook, best_dense[j])
        b = combine_folds(j, [fold[j] for fold in sparse], encoder_cos, csr, hook, best_sparse[j])
        assert (a.main, a.split_latents, a.main_stability) == (b.main, b.split_latents, b.main_stability)


def test_projection_metric_on_csr_codes_equals_dense_with_ties_and_negative_cosines():
    rng = np.random.default_rng(3)
    n, d_sae, d_model = 200, 300, 12
    codes = ((rng.random((n, d_sae)) < 0.01) * rng.random((n, d_sae))).astype(np.float32)
    codes[:5] = 0.0  # words with no active latent: their top latents are the lowest-index zeros
    W_dec = rng.normal(size=(d_sae, d_model)).astype(np.float32)
    direction = rng.normal(size=d_model).astype(np.float32)
    W_dec[:40] += 3 * direction  # absorbers along the probe
    acts = codes @ W_dec + rng.normal(size=(n, d_model)).astype(np.float32)
    config = ProjectionMetricConfig(top_k_latents=7)
    for split in ([1], [0, 250], [299]):
        dense = projection_absorption(acts, codes, direction, W_dec, split, config)
        sparse = projection_absorption(acts, sp.csr_matrix(codes), direction, W_dec, split, config,
                                       decoder_norms=row_norms(W_dec))
        for field in dense.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(dense, field), getattr(sparse, field), err_msg=field)
        assert np.array_equal(gather(codes, dense.top_latents), gather(sp.csr_matrix(codes), sparse.top_latents))


def test_paper_verdicts_from_per_batch_top_attributions_equal_the_full_attributions():
    rng = np.random.default_rng(4)
    n, d_sae = 30, 50
    attributions = rng.normal(size=(n, d_sae)).astype(np.float32)
    attributions[::3, 7] = -9.0  # a clear top latent on some words
    attributions[1, :] = 0.0  # all ties
    codes = ((rng.random((n, d_sae)) < 0.2) * rng.random((n, d_sae))).astype(np.float32)
    cos = rng.uniform(-0.2, 0.5, size=d_sae)
    config = abl.AblationMetricConfig()
    full = abl.paper_absorption(attributions, codes, [2, 3], cos, config)
    batches = [abl.top_attributions(attributions[i : i + 8], config.top_k_latents) for i in range(0, n, 8)]
    order, top = (np.concatenate(parts) for parts in zip(*batches))
    batched = abl.paper_absorption_from_top(order, top, sp.csr_matrix(codes), [2, 3], cos, config)
    for field in full.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(full, field), getattr(batched, field), err_msg=field)
    assert full.is_absorption.any()


class TinyTopK:
    """encode: ReLU of the top 3 pre-activations (a TopK SAE)."""

    def __init__(self, d_model: int = 8, d_sae: int = 40, seed: int = 5) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.W_enc = torch.randn(d_model, d_sae, generator=generator)
        self.W_dec = self.W_enc.T.contiguous()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = x @ self.W_enc
        top = pre.topk(3, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())


def test_words_are_encoded_in_blocks_into_the_codes_a_single_dense_call_gives():
    sae = TinyTopK()
    acts = np.random.default_rng(6).normal(size=(23, 8)).astype(np.float32)
    codes = encode_words(sae, acts, max_batch=5)
    assert sp.isspmatrix_csr(codes) and codes.dtype == np.float32 and codes.shape == (23, 40)
    # equal up to float rounding: BLAS may sum a 5-row block in another order than the 23-row matrix
    np.testing.assert_allclose(codes.toarray(), sae.encode(torch.from_numpy(acts)).numpy(), rtol=1e-5, atol=1e-6)
    assert codes.nnz <= 23 * 3
    assert encode_words(sae, acts[:0]).shape == (0, 40)


def test_every_fold_s_fits_stop_at_the_first_k_the_tau_rule_rejects(planted):
    """No fold fits past the k the rule rejects (fold 0 once fitted all k for the Letter page's curve): each letter's
    fits are its split latents' plus at most one, and that one added no more than tau."""
    config, *_, dense, _ = planted
    tau = config.k_sparse.split_tau
    checked = 0
    for fold in dense:
        for letter in fold:
            fits, n_split = letter.split.fits, len(letter.split.split_latents)
            assert n_split <= len(fits) <= n_split + 1
            if len(fits) == n_split + 1:
                assert n_split >= 1 and fits[-1].f1 - fits[-2].f1 <= tau
                checked += 1
    assert checked > 0, "some letter's fits stopped at a rejected k"
