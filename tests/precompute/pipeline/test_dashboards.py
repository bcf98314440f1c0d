"""Vectorised dashboard selection on hand-made sparse codes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.database import window_levels
from precompute.pipeline import dashboards as dash


def codes_from(entries: list[tuple[int, int, int, float]], n_rows: int = 10, seq_len: int = 8) -> dash.SparseCodes:
    """entries: (latent, row, pos, value)."""
    latent, row, pos, value = (np.array(x) for x in zip(*entries))
    return dash.SparseCodes(token_index=(row * seq_len + pos).astype(np.int64), latent=latent.astype(np.int32),
                            value=value.astype(np.float32), n_rows=n_rows, seq_len=seq_len, n_tokens=n_rows * (seq_len - 1))


def test_top_contexts_prefer_distinct_rows_then_fill_with_second_peaks():
    codes = codes_from([
        (0, 1, 2, 9.0), (0, 1, 5, 8.0),  # row 1: peak 9, second peak 8
        (0, 2, 3, 5.0),                  # row 2: peak 5
        (0, 3, 1, 1.0),                  # row 3: peak 1
        (1, 4, 4, 2.0),
    ])
    refs = dash.top_contexts(codes, n_top=3)
    chosen = sorted(zip(refs.latent.tolist(), refs.rank.tolist(), refs.act.tolist()))
    # Latent 0: row peaks 9, 5, 1 beat the second peak 8 of row 1.
    assert chosen == [(0, 0, 9.0), (0, 1, 5.0), (0, 2, 1.0), (1, 0, 2.0)]
    refs = dash.top_contexts(codes, n_top=10)
    assert refs.act[refs.latent == 0].tolist() == [9.0, 5.0, 1.0, 8.0], "second peaks fill remaining slots"


def test_quantile_bins_cover_the_range_and_sample_within_bins():
    values = np.linspace(0.1, 10.0, 100)
    codes = codes_from([(0, i % 10, 1 + i % 7, v) for i, v in enumerate(values)])
    stats = dash.latent_stats(codes, d_sae=1, hist_bins=10)
    refs = dash.quantile_contexts(codes, stats.max_act, n_bins=5, n_per_bin=2, seed=0)
    assert sorted(set(refs.kind.tolist())) == [1, 2, 3, 4, 5]
    for b, act in zip(refs.kind, refs.act):
        assert (b - 1) * 2.0 < act <= b * 2.0 + 1e-6
    assert stats.hist_counts[0].sum() == 100 and stats.max_act[0] == np.float32(10.0)


def test_window_activations_keep_only_the_window_and_dedupe():
    codes = codes_from([(0, 1, 1, 1.0), (0, 1, 3, 4.0), (0, 1, 7, 2.0), (1, 1, 3, 3.0)])
    refs = dash.ContextRefs(latent=np.array([0, 0], np.int32), kind=np.zeros(2, np.uint8), rank=np.arange(2, dtype=np.uint16),
                            token_index=np.array([1 * 8 + 3, 1 * 8 + 3]), act=np.array([4.0, 4.0], np.float32))
    max_act = np.array([4.0, 3.0], np.float32)
    windows = dash.window_activations(codes, refs, max_act, left=2, right=2, first_position=1)
    stored = list(zip(windows.context.tolist(), windows.rel_pos.tolist(), windows.level.tolist()))
    assert windows.latent.tolist() == [0]
    assert stored == [(0, -2, 4)], ("pos 1 once, named by the first context; pos 7 is outside the window; the "
                                    "contexts' own token (level 15 from its act) is left out; latent 1 is another latent")
    contexts = [(rank, 1, 3, 4.0) for rank in (0, 1)]
    assert window_levels(contexts, stored, 4.0) == {(1, 1): 4, (1, 3): 15}, "the reader gets every level back"


def test_a_context_token_whose_stored_act_gives_another_level_is_stored():
    """The context's act is stored rounded: where its level differs from the code's, the row is kept."""
    codes = codes_from([(0, 1, 3, 2.26), (0, 1, 4, 4.0)])
    refs = dash.ContextRefs(latent=np.array([0, 0], np.int32), kind=np.zeros(2, np.uint8), rank=np.arange(2, dtype=np.uint16),
                            token_index=np.array([1 * 8 + 4, 1 * 8 + 3]), act=np.array([4.0, 2.3], np.float32))
    windows = dash.window_activations(codes, refs, np.array([4.0], np.float32), left=2, right=2, first_position=1)
    stored = list(zip(windows.context.tolist(), windows.rel_pos.tolist(), windows.level.tolist()))
    # 2.26 / 4 * 15 = 8.475 -> 8, but the stored act 2.3 gives 8.625 -> 9: the true level is stored
    assert stored == [(0, -1, 8)]
    contexts = [(0, 1, 4, 4.0), (1, 1, 3, 2.3)]
    assert window_levels(contexts, stored, 4.0) == {(1, 4): 15, (1, 3): 8}


def test_an_sae_that_never_fired_selects_no_contexts():
    """Its codes are empty (an SAE read at the wrong scale, or rows too few): no contexts, no IndexError."""
    empty = dash.SparseCodes(token_index=np.zeros(0, np.int64), latent=np.zeros(0, np.int32),
                             value=np.zeros(0, np.float32), n_rows=4, seq_len=8, n_tokens=28)
    stats = dash.latent_stats(empty, d_sae=3, hist_bins=10)
    refs = dash.concat_refs([dash.top_contexts(empty, n_top=5),
                             dash.quantile_contexts(empty, stats.max_act, n_bins=5, n_per_bin=2, seed=0)])
    windows = dash.window_activations(empty, refs, stats.max_act, left=2, right=2, first_position=1)
    assert len(refs.latent) == 0 and len(windows.latent) == 0
    assert stats.n_fired.tolist() == [0, 0, 0]


def lexsorted_top_contexts(codes, n_top: int):
    """top_contexts as first written (two three-key lexsorts): the reference for the one-key sorts."""
    row = codes.token_index // codes.seq_len
    order = np.lexsort((-codes.value, row, codes.latent))
    lat, row_sorted = codes.latent[order], row[order]
    is_row_peak = np.zeros(len(order), dtype=bool)
    is_row_peak[order[(np.diff(lat, prepend=-1) != 0) | (np.diff(row_sorted, prepend=-1) != 0)]] = True
    order2 = np.lexsort((-codes.value, ~is_row_peak, codes.latent))
    ranks = dash.rank_within_groups(codes.latent[order2])
    keep = order2[ranks < n_top]
    return keep, ranks[ranks < n_top]


def lexsorted_quantile_order(codes, max_act, n_bins: int, n_per_bin: int, seed: int):
    scale = np.where(max_act > 0, max_act, 1.0)[codes.latent]
    bins = np.clip(np.ceil(codes.value / scale * n_bins).astype(np.int64), 1, n_bins)
    group = codes.latent.astype(np.int64) * (n_bins + 1) + bins
    order = np.lexsort((np.random.default_rng(seed).random(len(group)), group))
    return order[dash.rank_within_groups(group[order]) < n_per_bin]


@pytest.mark.parametrize("ties", [False, True])
def test_one_key_sorts_pick_the_contexts_the_lexsorts_pick(ties):
    """top_contexts and quantile_contexts sort one int64 key instead of lexsorting three; the same contexts in the
    same ranks, with tied activations (a token repeated in a row, as in a model without attention) too."""
    rng = np.random.default_rng(3)
    n_rows, seq_len, d_sae, n = 40, 16, 30, 3000
    token_index = np.sort(rng.choice(n_rows * seq_len, size=n, replace=True))
    latent = rng.integers(0, d_sae, size=n).astype(np.int32)
    pairs = np.unique(np.stack([token_index, latent], 1), axis=0)  # one code per (token, latent)
    token_index, latent = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int32)
    value = rng.random(len(latent)).astype(np.float32) + 0.01
    if ties:
        value = np.round(value * 4).astype(np.float32) / 4 + 0.25  # four levels: many equal values per row
    codes = dash.SparseCodes(token_index=token_index, latent=latent, value=value, n_rows=n_rows, seq_len=seq_len,
                             n_tokens=n_rows * seq_len)
    refs = dash.top_contexts(codes, n_top=5)
    keep, ranks = lexsorted_top_contexts(codes, n_top=5)
    assert np.array_equal(refs.token_index, token_index[keep]) and np.array_equal(refs.latent, latent[keep])
    assert np.array_equal(refs.rank, ranks.astype(np.uint16)) and np.array_equal(refs.act, value[keep])
    stats = dash.latent_stats(codes, d_sae, 8)
    quantile = dash.quantile_contexts(codes, stats.max_act, n_bins=5, n_per_bin=2, seed=7)
    expected = lexsorted_quantile_order(codes, stats.max_act, 5, 2, 7)
    assert sorted(zip(quantile.latent, quantile.token_index)) == sorted(zip(latent[expected], token_index[expected]))


@pytest.mark.parametrize("key", [
    np.array([5, 3, 5, 1, 3, 3, 0, 7], dtype=np.int64),  # ties: index order kept
    np.array([-4, 2, -4, 9, 0], dtype=np.int32),  # negative integers
    np.random.default_rng(0).random(1000),  # the quantile sample's random keys (non-negative floats)
    np.array([0.5, -0.25, 0.5, 0.0, -0.0], dtype=np.float64),  # negatives and -0.0: numpy's own stable sort
    np.zeros(0, dtype=np.int64),
])
def test_stable_order_is_numpy_s_stable_argsort(key):
    assert np.array_equal(dash.stable_order(key), np.argsort(key, kind="stable"))


def test_latent_maxima_are_the_per_latent_maxima():
    rng = np.random.default_rng(1)
    latent = rng.integers(0, 50, 5000).astype(np.int32)
    value = rng.random(5000).astype(np.float32)
    expected = np.zeros(60, np.float32)
    np.maximum.at(expected, latent, value)
    assert np.array_equal(dash.latent_maxima(latent, value, 60), expected)
    assert np.array_equal(dash.latent_maxima(latent[:0], value[:0], 3), np.zeros(3, np.float32))


class SparseShy:
    """An SAE whose decode cannot take a sparse tensor."""

    def __init__(self, sae) -> None:
        self.sae, self.cfg, self.dtype = sae, sae.cfg, sae.dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(x)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.is_sparse:
            raise NotImplementedError("dense codes only")
        return self.sae.decode(codes)


@pytest.mark.parametrize("shy", [False, True])
@torch.no_grad()  # as the pass runs
def test_the_sparse_decode_reconstructs_what_the_dense_one_does_or_is_not_used(monkeypatch, shy):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=64, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.b_enc.fill_(-1.0)  # a few latents a token
    x = torch.randn(64, 16)
    dense = dash.SparseCodeCollector(sae, seq_len=9, first_position=1)
    tried = dash.SparseCodeCollector(SparseShy(sae) if shy else sae, seq_len=9, first_position=1)
    monkeypatch.setattr(dash, "SPARSE_DECODE_DENSITY", 10**6)  # the reference: the dense decode for every block
    dense.update(x[:32], 0), dense.update(x[32:], 4)
    monkeypatch.setattr(dash, "SPARSE_DECODE_DENSITY", 0)  # sparse whatever the density
    tried.update(x[:32], 0), tried.update(x[32:], 4)
    assert tried.sparse_decode is (not shy)
    a, b = dense.result(8), tried.result(8)
    assert np.array_equal(a.codes.value, b.codes.value) and a.stats.l0 == b.stats.l0 > 0
    if shy:  # the dense decode throughout: the same statistics exactly
        assert a.stats == b.stats
    else:  # the second block decoded sparsely: the same to float32 rounding
        assert b.stats.explained_variance == pytest.approx(a.stats.explained_variance, rel=1e-6)
        assert b.stats.mse == pytest.approx(a.stats.mse, rel=1e-5)
