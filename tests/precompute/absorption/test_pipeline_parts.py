"""Known-answer tests for the pieces of the absorption pipeline: shared-prefix model passes, probes,
k-sparse probing, baselines and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.absorption import baselines as base
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.activations import answer_logits, word_activations
from precompute.absorption.prompts import PromptSet
from precompute.absorption.stats import BootstrapConfig, letter_and_overall_intervals
from precompute.absorption.tables import rounded_absorber
from precompute.absorption.vocab import Word


@pytest.fixture(scope="module")
def attentive_model() -> HookedTransformer:
    """A random 2-layer model with live attention, so a wrong prefix cache would change the answer."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=32, d_head=4, n_heads=4, d_mlp=32, d_vocab=60,
                                  act_fn="relu", normalization_type="LN", positional_embedding_type="rotary",
                                  device="cpu", seed=1)
    return HookedTransformer(cfg)


def prompt_set(share: bool) -> PromptSet:
    words = [Word(token_id=t, text=f"w{t}", letter="abc"[t % 3]) for t in range(10, 22)]
    prefixes = [[1, 2, 3, 4, 5], [6, 7, 8, 9]] if share else [[1, 2, 3, 4, 5 + i % 3] for i in range(len(words))]
    index = np.array([i % 2 for i in range(len(words))] if share else range(len(words)))
    return PromptSet(words, np.array([t % 3 for t in range(10, 22)]), np.zeros(len(words), dtype=bool), prefixes, index,
                     tail_ids=[40, 41, 42], n_dropped=0)


@pytest.mark.parametrize("share", [True, False])
def test_cached_prefix_passes_equal_full_prompt_passes(attentive_model, share):
    prompts = prompt_set(share)
    hook = "blocks.1.hook_resid_post"
    acts = word_activations(attentive_model, prompts, hook, layer=1, batch_size=5, progress=False)
    letter_ids = list(range(30, 56))
    logits = answer_logits(attentive_model, prompts, np.arange(len(prompts)), letter_ids, batch_size=5, progress=False)
    for i in range(len(prompts)):
        tokens = torch.tensor([prompts.prompt_ids(i)])
        full_logits, cache = attentive_model.run_with_cache(tokens, names_filter=hook)
        word_position = -1 - len(prompts.tail_ids)
        np.testing.assert_allclose(acts[i], cache[hook][0, word_position].numpy(), atol=1e-4)
        np.testing.assert_allclose(logits[i], full_logits[0, -1, letter_ids].detach().numpy(), atol=1e-4)


def separable_letters(n: int = 1300, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each letter j has a direction; x = 3 * direction[label] + noise."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(d, d)))[0][:26]
    labels = np.arange(n) % 26
    x = 3.0 * directions[labels] + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32), labels, directions


def test_letter_probe_recovers_planted_directions():
    x, labels, directions = separable_letters()
    probe = pr.train_letter_probe(x[:1040], labels[:1040], pr.ProbeConfig(epochs=50, batch_size=32))
    scores = pr.classifier_scores(probe.logits(x[1040:]) > 0, labels[1040:])
    assert scores.f1.min() > 0.85 and scores.f1.mean() > 0.95
    assert ((probe.directions() @ directions.T).argmax(axis=1) == np.arange(26)).all()
    assert pr.probe_stability(x[:1040], labels[:1040], pr.ProbeConfig(batch_size=32)).min() > 0.8
    assert np.nanmin(pr.letter_aucs(probe.logits(x[1040:]), labels[1040:])) > 0.99


def test_probe_batch_shrinks_so_small_samples_get_enough_adam_steps():
    config = pr.ProbeConfig()
    assert config.batch_size_for(200_000) == 4096  # large samples keep the largest batch
    assert config.batch_size_for(2_400) == 75  # 32 steps an epoch
    assert config.batch_size_for(500) == 64  # never below min_batch_size
    assert pr.ProbeConfig(batch_size=32).batch_size_for(500) == 32  # an explicit smaller batch wins


def test_small_sample_probe_is_not_stopped_early_by_one_batch_an_epoch():
    # 2,400 words in one 4,096 batch: 50 Adam steps cap every weight (docs/split_rule.md); 32 steps an epoch do not
    rng = np.random.default_rng(0)
    directions = np.linalg.qr(rng.normal(size=(64, 64)))[0][:26]
    labels = np.arange(3000) % 26
    x = (0.2 * directions[labels] + 0.05 * rng.normal(size=(3000, 64))).astype(np.float32)
    one_batch = pr.ProbeConfig(min_steps_per_epoch=1, min_batch_size=4096)
    f1 = {name: pr.classifier_scores(pr.train_letter_probe(x[:2400], labels[:2400], cfg).logits(x[2400:]) > 0,
                                     labels[2400:]).f1.mean()
          for name, cfg in {"one_batch": one_batch, "default": pr.ProbeConfig()}.items()}
    assert f1["default"] > f1["one_batch"] + 0.2, f1


def test_probe_stability_is_low_for_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1040, 128)).astype(np.float32)
    labels = np.arange(1040) % 26
    assert np.median(pr.probe_stability(x, labels, pr.ProbeConfig(batch_size=32))) < 0.5


def planted_codes(n: int = 2600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """d_sae = 60 latents: latent j fires on letter j; letter 's' (18) is split over latents 18 and 40
    (each fires on half of the s-words); the rest is sparse noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 26
    codes = (rng.random((n, 60)) < 0.02) * rng.random((n, 60))
    codes[np.arange(n), labels] = 1.0 + rng.random(n)
    s_words = np.flatnonzero(labels == 18)
    half = s_words[: len(s_words) // 2]
    codes[half, 18] = 0.0
    codes[half, 40] = 1.0 + rng.random(len(half))
    return codes.astype(np.float32), labels


def test_k_sparse_probing_finds_split_latents():
    codes, labels = planted_codes()
    sparse = pr.train_sparse_probe(codes[:2080], labels[:2080], pr.SparseProbeConfig(batch_size=512))
    splits = ks.k_sparse_probing(sparse, codes[:2080], labels[:2080], codes[2080:], labels[2080:], ks.KSparseConfig(max_k=4, rule="l1"))
    assert sorted(splits[18].split_latents) == [18, 40]
    assert splits[18].fits[1].f1 > splits[18].fits[0].f1 + 0.03
    assert splits[0].split_latents == [0] and splits[0].fits[0].f1 > 0.9
    assert ks.k_sparse_decision(splits[18].split_fit, codes[2080:])[labels[2080:] == 18].mean() > 0.95


def test_sparse_codes_train_the_same_l1_probe_and_split_latents_as_dense_codes():
    import scipy.sparse as sp
    codes, labels = planted_codes()
    config = pr.SparseProbeConfig(batch_size=512, epochs=20)
    dense = pr.train_sparse_probe(codes[:2080], labels[:2080], config)
    sparse = pr.train_sparse_probe(sp.csr_matrix(codes[:2080]), labels[:2080], config)
    np.testing.assert_allclose(sparse.weight, dense.weight, atol=1e-4)
    np.testing.assert_allclose(sparse.bias, dense.bias, atol=1e-4)
    train = sp.csr_matrix(codes[:2080])
    from_csr = ks.k_sparse_probing(sparse, train, labels[:2080], codes[2080:], labels[2080:], ks.KSparseConfig(max_k=4, rule="l1"))
    assert sorted(from_csr[18].split_latents) == [18, 40]


def test_ranked_latents_ignore_negative_weights():
    probe = pr.LinearProbe(np.array([[0.5, -2.0, 0.1, 0.0]] * 26), np.zeros(26))
    assert ks.ranked_latents(probe, 0, max_k=4) == [0, 2]


def test_main_latent_is_the_encoder_best_aligned():
    codes, labels = planted_codes()
    encoder_cos = np.zeros((60, 26))
    encoder_cos[np.arange(26), np.arange(26)] = 0.9
    mains = ks.main_latents(encoder_cos, codes, labels)
    assert mains[0].latent == 0 and mains[0].recall == 1.0
    assert mains[18].latent == 18 and mains[18].recall == pytest.approx(0.5, abs=0.02)


def test_baselines_find_the_planted_neuron_and_direction():
    x, labels, directions = separable_letters()
    x = x.copy()
    x[:, 5] = np.where(labels == 2, -4.0, 0.0) + 0.1 * np.random.default_rng(1).normal(size=len(x))  # low = 'c'
    neuron = base.best_direction_baseline("neuron", x[:1040], labels[:1040], x[1040:], labels[1040:])
    assert neuron[2].index == 5 and neuron[2].sign == -1 and neuron[2].f1 > 0.95
    train_pca, test_pca = base.pca_projections(x[:1040], x[1040:])
    pca = base.best_direction_baseline("pca", train_pca, labels[:1040], test_pca, labels[1040:])
    assert pca[2].f1 > 0.9
    codes, code_labels = planted_codes()
    latents = base.best_active_latent(codes[:2080], code_labels[:2080], codes[2080:], code_labels[2080:])
    assert latents[3].index == 3 and latents[3].f1 > 0.8


def test_bootstrap_intervals_cover_the_mean_and_shrink_with_more_words():
    rng = np.random.default_rng(0)
    small = {0: rng.random(20), 1: rng.random(20)}
    large = {0: rng.random(2000), 1: rng.random(2000)}
    letters, overall = letter_and_overall_intervals(small, [0, 1], BootstrapConfig())
    assert letters[0].low <= letters[0].value <= letters[0].high
    assert overall.value == pytest.approx((small[0].mean() + small[1].mean()) / 2)
    _, overall_large = letter_and_overall_intervals(large, [0, 1], BootstrapConfig())
    assert overall_large.high - overall_large.low < (overall.high - overall.low) / 3
    letters, overall = letter_and_overall_intervals({0: np.array([]), 1: np.ones(5)}, [0, 1], BootstrapConfig())
    assert np.isnan(letters[0].value) and overall.value == 1.0


def test_absorber_is_the_first_top_latent_that_is_not_a_split_latent():
    acts, scores = np.array([1.0, 2.0, 3.0]), np.array([0.9, 0.5, 0.1])
    assert rounded_absorber(np.array([5, 9, 2]), acts, scores, split_latents=[5]) == (9, 2.0, 0.5)
    assert rounded_absorber(np.array([9, 5, 2]), acts, scores, split_latents=[5]) == (9, 1.0, 0.9)
    assert rounded_absorber(np.array([5]), acts[:1], scores[:1], split_latents=[5]) == (None, None, None)


def test_folds_measured_in_threads_give_what_each_gives_alone(monkeypatch):
    """The build measures several folds at once (measure.measure_folds); each trains its L1 probe from torch's global
    generator, seeded per probe, so the draws must not interleave: every fold's probe is the one it trains alone."""
    import threading

    from precompute.absorption import measure
    from precompute.absorption.config import AbsorptionConfig

    x, labels, _ = separable_letters(n=520)
    threads: set[str] = set()

    def fold_probe(fold, codes, weights, hook, config):  # a fold's own seed: another's draws would change its probe
        threads.add(threading.current_thread().name)
        return pr.train_probe(x, labels, epochs=3, lr=1e-2, end_lr=1e-3, weight_decay=0.0, batch_size=128, seed=fold)

    monkeypatch.setattr(measure, "measure_fold", fold_probe)
    config = AbsorptionConfig(n_folds=5)
    monkeypatch.setattr(measure, "FOLD_WORKERS", 1)
    alone = measure.measure_folds(None, None, None, config)
    threads.clear()
    monkeypatch.setattr(measure, "FOLD_WORKERS", 5)
    together = measure.measure_folds(None, None, None, config)
    assert len(threads) > 1, "the folds ran in threads"
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert not np.array_equal(alone[0].weight, alone[1].weight)  # the seeds differ, so would a mixed-up draw
