"""Cross-SAE matching and the shared per-hook dashboard pass, on SAEs with a known relation."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch
from sae_lens import SAE

from precompute.loading.sae import SAESpec
from precompute.pipeline import dashboards as dash
from precompute.pipeline.job import JobConfig, run_job
from precompute.pipeline.matching import best_matches, unit_decoder
from tests import helpers

N_ROWS = 48
PERMUTATION = np.array([5, 2, 7, 0, 3, 1, 6, 4])  # latent i of "permuted" is latent PERMUTATION[i] of "planted"


def permuted_copy(folder, root, name: str = "permuted"):
    """The planted SAE with its latents reordered and four random latents appended (a wider SAE)."""
    sae = SAE.load_from_disk(str(folder), device="cpu")
    d_in = sae.cfg.d_in
    extra_dec = torch.nn.functional.normalize(torch.randn(4, d_in, generator=torch.Generator().manual_seed(3)), dim=-1)
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=d_in, d_sae=12, dtype="float32", device="cpu")
    cfg.metadata.hook_name = helpers.HOOK
    cfg.metadata.model_name = "tiny"
    wider = StandardSAE(cfg)
    with torch.no_grad():
        wider.W_enc.zero_()
        wider.b_enc.fill_(-100.0)  # the extra latents never fire
        wider.W_enc[:, :8] = sae.W_enc[:, PERMUTATION]
        wider.b_enc[:8] = sae.b_enc[PERMUTATION]
        wider.W_dec[:8] = sae.W_dec[PERMUTATION]
        wider.W_dec[8:] = extra_dec
        wider.b_dec.copy_(sae.b_dec)
    out = root / name
    wider.save_model(str(out))
    return out


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("matching")
    corpus = root / "corpus.parquet"
    helpers.random_corpus(corpus, N_ROWS)
    planted = helpers.planted_sae_folder(root)
    permuted = permuted_copy(planted, root)
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, N_ROWS), db_path=root / "x.duckdb",
                       dashboard=dash.DashboardConfig(batch_size=16, n_top=5, context_left=2, context_right=1),
                       absorption=None)
    run_job([SAESpec(key="planted", path=planted), SAESpec(key="permuted", path=permuted)], config,
            model=helpers.tiny_model(), tokenizer=helpers.FakeTokenizer(), log=lambda *_: None)
    return root, config, planted


def rows(db_path, sql, params=()):
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_best_matches_recovers_a_permutation():
    decoder = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    index, cosine = best_matches(decoder[PERMUTATION], decoder, chunk=3)
    assert index.tolist() == PERMUTATION.tolist()
    assert np.allclose(cosine, 1.0, atol=1e-5)


def test_each_latent_is_matched_in_the_other_sae_at_the_hook(sweep_db):
    root, config, _ = sweep_db
    forward = dict(rows(config.db_path, "SELECT latent, other_latent FROM latent_matches "
                                       "WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'permuted') AND other_sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted')"))
    backward = rows(config.db_path, "SELECT latent, other_latent, cosine FROM latent_matches "
                                    "WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted') AND other_sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'permuted') "
                                    "ORDER BY latent")
    assert len(forward) == 12 and len(backward) == 8  # one row per latent of the first SAE
    assert [forward[i] for i in range(8)] == PERMUTATION.tolist()
    inverse = np.argsort(PERMUTATION)
    assert [r[1] for r in backward] == inverse.tolist()
    assert all(c == pytest.approx(1.0, abs=1e-3) for *_, c in backward)
    assert rows(config.db_path, "SELECT count(*) FROM latent_matches WHERE sae_num = other_sae_num")[0][0] == 0


def test_adding_an_sae_matches_only_the_new_pairs_and_force_rematches(sweep_db):
    root, config, planted = sweep_db
    third = permuted_copy(planted, root, "third")
    before = rows(config.db_path, "SELECT a.sae_key, b.sae_key, count(*) FROM latent_matches m JOIN sae_numbers a ON a.sae_num = m.sae_num "
                  "JOIN sae_numbers b ON b.sae_num = m.other_sae_num GROUP BY ALL ORDER BY ALL")
    run_job([SAESpec(key="third", path=third)], config, model=helpers.tiny_model(),
            tokenizer=helpers.FakeTokenizer(), log=lambda *_: None)
    pairs = rows(config.db_path, "SELECT a.sae_key, b.sae_key, count(*) FROM latent_matches m JOIN sae_numbers a ON a.sae_num = m.sae_num "
                  "JOIN sae_numbers b ON b.sae_num = m.other_sae_num GROUP BY ALL ORDER BY ALL")
    assert set(before) < set(pairs)
    assert {(a, b) for a, b, _ in pairs} == {(a, b) for a in ("planted", "permuted", "third")
                                              for b in ("planted", "permuted", "third") if a != b}
    assert all(n == (8 if a == "planted" else 12) for a, _, n in pairs)  # nothing duplicated


def test_shared_hook_pass_gives_each_sae_what_its_own_pass_gives(sweep_db):
    root, config, planted = sweep_db
    model = helpers.tiny_model()
    corpus_rows = helpers.random_corpus(root / "again.parquet", 16)
    saes = [SAE.load_from_disk(str(p), device="cpu") for p in (planted, root / "permuted")]
    shared = dash.collect_sparse_codes_for_hooks(model, saes, [helpers.HOOK] * len(saes), corpus_rows, config.dashboard)
    for sae, together in zip(saes, shared):
        alone = dash.collect_sparse_codes(model, sae, helpers.HOOK, corpus_rows, config.dashboard)
        assert np.array_equal(alone.codes.token_index, together.codes.token_index)
        assert np.array_equal(alone.codes.latent, together.codes.latent)
        assert np.allclose(alone.codes.value, together.codes.value)
        assert alone.stats == together.stats
    assert len(shared[0].codes.latent) > 0


def test_one_pass_for_saes_at_several_hooks_gives_each_what_its_own_pass_gives(sweep_db):
    root, config, planted = sweep_db
    model = helpers.tiny_model()
    corpus_rows = helpers.random_corpus(root / "again.parquet", 16)
    early = helpers.planted_sae_folder(root, name="early-sae", hook=helpers.EARLY_HOOK, seed=3)
    saes = [SAE.load_from_disk(str(p), device="cpu") for p in (planted, early, root / "permuted")]
    hooks = [helpers.HOOK, helpers.EARLY_HOOK, helpers.HOOK]
    calls = []
    run_with_cache = model.run_with_cache

    def counted(*args, **kwargs):
        calls.append((tuple(kwargs["names_filter"]), kwargs["stop_at_layer"]))
        return run_with_cache(*args, **kwargs)

    model.run_with_cache = counted
    together = dash.collect_sparse_codes_for_hooks(model, saes, hooks, corpus_rows, config.dashboard)
    n_batches = -(-len(corpus_rows) // config.dashboard.batch_size)
    assert calls == [((helpers.EARLY_HOOK, helpers.HOOK), 2)] * n_batches  # one forward a batch, to the deeper hook
    model.run_with_cache = run_with_cache
    for sae, hook, shared in zip(saes, hooks, together):
        alone = dash.collect_sparse_codes(model, sae, hook, corpus_rows, config.dashboard)
        assert np.array_equal(alone.codes.token_index, shared.codes.token_index)
        assert np.array_equal(alone.codes.latent, shared.codes.latent)
        assert np.array_equal(alone.codes.value, shared.codes.value)
        assert alone.stats == shared.stats
    assert len(together[1].codes.latent) > 0


def test_unit_decoder_rows_have_unit_norm(sweep_db):
    _, _, planted = sweep_db
    decoder = unit_decoder(SAE.load_from_disk(str(planted), device="cpu"))
    assert torch.allclose(decoder.norm(dim=-1), torch.ones(8))


def brute_force_neighbors(W_dec: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole [d_sae, d_sae] cosine matrix at once: what the blocks must reproduce."""
    W = torch.nn.functional.normalize(W_dec.float(), dim=-1)
    sims = W @ W.T
    sims.fill_diagonal_(-2.0)
    top = sims.topk(n, dim=-1)
    return top.indices.numpy(), top.values.numpy()


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_decoder_neighbors_in_blocks_equal_the_full_cosine_matrix(chunk):
    W_dec = torch.randn(50, 6, generator=torch.Generator().manual_seed(8))

    class Decoder:
        pass

    sae = Decoder()
    sae.W_dec = W_dec
    ids, cos = dash.decoder_neighbors(sae, 5, chunk=chunk)
    full_ids, full_cos = brute_force_neighbors(W_dec, 5)
    assert np.array_equal(ids, full_ids)
    np.testing.assert_allclose(cos, full_cos, atol=1e-6)


def test_blocks_of_latents_are_sized_by_the_width():
    from precompute.util.blocks import row_blocks, rows_per_block

    assert rows_per_block(262_144) == 128 and rows_per_block(4096) == 8192
    assert rows_per_block(10**9) == 1  # never zero rows
    assert rows_per_block(10, cap=3) == 3
    assert [(b.start, b.stop) for b in row_blocks(10, 4, max_elements=12)] == [(0, 3), (3, 6), (6, 9), (9, 10)]


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_best_matches_in_blocks_equal_one_block(chunk):
    generator = torch.Generator().manual_seed(9)
    a = torch.nn.functional.normalize(torch.randn(30, 6, generator=generator), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(40, 6, generator=generator), dim=-1)
    index, cosine = best_matches(a, b, chunk=chunk)
    full = (a @ b.T).max(dim=1)
    assert np.array_equal(index, full.indices.numpy())
    np.testing.assert_allclose(cosine, full.values.numpy(), atol=1e-6)


def test_a_wide_sae_is_encoded_in_blocks_of_tokens_with_the_codes_of_whole_batches(sweep_db, monkeypatch):
    """A few tokens per block (as a 262k-latent SAE gets): the same codes and statistics as whole batches."""
    from functools import partial

    root, config, planted = sweep_db
    model = helpers.tiny_model()
    corpus_rows = helpers.random_corpus(root / "blocks.parquet", 16)
    sae = SAE.load_from_disk(str(planted), device="cpu")
    whole = dash.collect_sparse_codes(model, sae, helpers.HOOK, corpus_rows, config.dashboard)
    monkeypatch.setattr(dash, "row_blocks", partial(dash.row_blocks, max_elements=8 * 5))  # 5 tokens a block
    blocks = dash.collect_sparse_codes(model, sae, helpers.HOOK, corpus_rows, config.dashboard)
    assert np.array_equal(whole.codes.token_index, blocks.codes.token_index)
    assert np.array_equal(whole.codes.latent, blocks.codes.latent)
    np.testing.assert_array_equal(whole.codes.value, blocks.codes.value)
    assert whole.stats.n_tokens == blocks.stats.n_tokens and whole.stats.l0 == blocks.stats.l0
    assert whole.stats.explained_variance == pytest.approx(blocks.stats.explained_variance, abs=1e-9)
    assert len(whole.codes.latent) > 0


def test_a_hooks_saes_share_passes_within_the_weight_budget():
    from precompute.pipeline.job import shared_passes

    specs = [SAESpec(key=k, path=None) for k in "abcde"]
    size = {"a": 4, "b": 4, "c": 10, "d": 1, "e": 1}
    passes = shared_passes(specs, max_bytes=8, weight_bytes=lambda s: size[s.key])
    assert [[s.key for s in p] for p in passes] == [["a", "b"], ["c"], ["d", "e"]]
    assert len(shared_passes(specs, max_bytes=100, weight_bytes=lambda s: size[s.key])) == 1  # today's one pass
