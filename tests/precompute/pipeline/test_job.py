"""The dashboard precompute on a tiny random model with a planted latent (known answers)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from backend.database import window_levels
from contract.schema import ACTIVATION_LEVELS
from precompute.loading.sae import SAESpec
from precompute.pipeline.dashboards import DashboardConfig
from precompute.pipeline.job import JobConfig, run_job
from tests import helpers

N_ROWS = 64


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    corpus = root / "corpus.parquet"
    rows = helpers.random_corpus(corpus, N_ROWS)
    folder = helpers.planted_sae_folder(root)
    db_path = root / "explorer.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, N_ROWS), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=20, context_left=4, context_right=2), absorption=None)
    timings = run_job([SAESpec(key="planted", path=folder)], config, model=helpers.tiny_model(),
                      tokenizer=helpers.FakeTokenizer(), log=lambda *_: None)
    return rows, db_path, timings


def query(db_path, sql, params=()):
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_planted_latent_top_contexts_are_the_planted_token(built):
    rows, db_path, _ = built
    contexts = query(db_path, "SELECT seq_id, pos, act FROM contexts WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted') AND latent = ? AND kind = 0",
                     [helpers.PLANTED_LATENT])
    assert len(contexts) == 20
    for seq_id, pos, act in contexts:
        assert rows[seq_id, pos] == helpers.PLANTED_TOKEN
        assert act == pytest.approx(5.0, rel=1e-3)


def test_planted_latent_density_matches_token_frequency(built):
    rows, db_path, _ = built
    expected = (rows[:, 1:] == helpers.PLANTED_TOKEN).mean()  # position 0 excluded
    (density, n_fired, max_act), = query(
        db_path, "SELECT density, n_fired, max_act FROM latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted') AND latent = ?",
        [helpers.PLANTED_LATENT])
    assert density == pytest.approx(expected)
    assert n_fired == (rows[:, 1:] == helpers.PLANTED_TOKEN).sum()
    assert max_act == pytest.approx(5.0, rel=1e-3)


def test_position_zero_never_appears_in_contexts(built):
    _, db_path, _ = built
    (n,), = query(db_path, "SELECT count(*) FROM contexts WHERE pos = 0")
    assert n == 0


PLANTED = "(SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted')"


def test_window_activations_mark_every_planted_token_in_the_window(built):
    rows, db_path, _ = built
    contexts = query(db_path, f"SELECT row_number() OVER (ORDER BY kind, rank) - 1, seq_id, pos, act FROM contexts "
                              f"WHERE sae_num = {PLANTED} AND latent = ? ORDER BY kind, rank", [helpers.PLANTED_LATENT])
    acts = query(db_path, f"SELECT context, rel_pos, level FROM window_acts WHERE sae_num = {PLANTED} AND latent = ?",
                 [helpers.PLANTED_LATENT])
    (max_act,), = query(db_path, f"SELECT max_act FROM latents WHERE sae_num = {PLANTED} AND latent = ?",
                        [helpers.PLANTED_LATENT])
    levels = window_levels(contexts, acts, max_act)
    expected: set[tuple[int, int]] = set()
    for _, seq_id, pos, _ in contexts:
        lo, hi = max(pos - 4, 1), min(pos + 2, rows.shape[1] - 1)
        expected |= {(seq_id, p) for p in range(lo, hi + 1) if rows[seq_id, p] == helpers.PLANTED_TOKEN}
    assert set(levels) == expected, "exactly the planted tokens inside the windows"
    assert set(levels.values()) == {ACTIVATION_LEVELS}
    centers = {(seq_id, pos) for _, seq_id, pos, _ in contexts}
    named = [(seq, pos + rel) for context, rel, _ in acts for c, seq, pos, _ in contexts if c == context]
    assert len(named) == len(set(named)), "overlapping windows stored once"
    assert not set(named) & centers, "a context's own token, at the level its act gives, is left to the reader"
    assert len(acts) == len(expected - centers)


def test_quantile_contexts_and_histogram(built):
    rows, db_path, _ = built
    kinds = {k for (k,) in query(db_path, "SELECT DISTINCT kind FROM contexts WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted')")}
    assert 0 in kinds and kinds - {0}, "top and quantile contexts are both stored"
    (hist,), = query(db_path, "SELECT hist_counts FROM latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted') AND latent = ?",
                     [helpers.PLANTED_LATENT])
    assert sum(hist) == (rows[:, 1:] == helpers.PLANTED_TOKEN).sum()
    assert hist[-1] == sum(hist), "a constant activation lands in the top bin"


def test_every_referenced_sequence_is_stored_once(built):
    _, db_path, _ = built
    (missing,), = query(db_path, "SELECT count(*) FROM contexts c ANTI JOIN sequences s USING (seq_id)")
    assert missing == 0
    (dupes,), = query(db_path, "SELECT count(*) - count(DISTINCT seq_id) FROM sequences")
    assert dupes == 0


def test_neighbors_and_logits_have_requested_sizes(built):
    _, db_path, _ = built
    for neighbors, cosines, top, bottom in query(
            db_path, "SELECT neighbor_ids, neighbor_cosines, top_logit_values, bottom_logit_values "
                     "FROM latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'planted')"):
        neighbors, cosines = list(neighbors), list(cosines)  # ARRAY columns come back as tuples
        assert len(neighbors) == 10 and neighbors[7:] == [-1] * 3  # d_sae - 1 < 10: every other latent, then padding
        assert cosines[7:] == [None] * 3 and cosines[:7] == sorted(cosines[:7], reverse=True)
        assert list(top) == sorted(top, reverse=True) and list(bottom) == sorted(bottom)


def test_sae_stats_are_recorded(built):
    _, db_path, timings = built
    (n_tokens, l0, ev, hook, d_sae), = query(db_path, "SELECT n_tokens, l0, explained_variance, hook_name, d_sae FROM saes")
    assert n_tokens == N_ROWS * (helpers.N_CTX - 1)
    assert hook == helpers.HOOK and d_sae == 8
    assert l0 > 0 and ev < 1.0
    assert timings[0].n_tokens == n_tokens


def test_rerun_skips_existing_and_force_recomputes(built, tmp_path):
    rows, db_path, _ = built
    import shutil
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(db_path, copy)
    folder = helpers.planted_sae_folder(tmp_path)
    config = JobConfig(model_name="tiny", corpus_path=db_path.parent / "corpus.parquet", corpus_rows=(0, N_ROWS),
                       db_path=copy, dashboard=DashboardConfig(batch_size=16, context_left=4, context_right=2), absorption=None)
    messages: list[str] = []
    timings = run_job([SAESpec(key="planted", path=folder), SAESpec(key="second", path=folder)], config,
                      model=helpers.tiny_model(), tokenizer=helpers.FakeTokenizer(), log=messages.append)
    assert [t.key for t in timings] == ["second"]
    assert any("skip planted" in m for m in messages)
    assert {k for (k,) in query(copy, "SELECT sae_key FROM saes")} == {"planted", "second"}


def test_dead_latent_is_counted_and_has_no_contexts(built):
    _, db_path, _ = built
    (n_fired,), = query(db_path, "SELECT n_fired FROM latents WHERE latent = ?", [helpers.DEAD_LATENT])
    (n_contexts,), = query(db_path, "SELECT count(*) FROM contexts WHERE latent = ?", [helpers.DEAD_LATENT])
    (n_dead,), = query(db_path, "SELECT n_dead FROM saes")
    assert n_fired == 0 and n_contexts == 0 and n_dead >= 1


def test_interrupted_build_resumes_without_redoing_finished_saes(tmp_path, monkeypatch):
    """A build killed after one SAE's commit keeps that SAE: the rerun only computes the other."""
    from precompute.pipeline import job

    corpus = tmp_path / "corpus.parquet"
    helpers.random_corpus(corpus, N_ROWS)
    specs = [SAESpec(key=key, path=helpers.planted_sae_folder(tmp_path, seed=i, name=key))
             for i, key in enumerate(("first", "second"))]
    db_path = tmp_path / "explorer.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, N_ROWS), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=5), absorption=None)
    real_write = job.write_sae_tables
    written: list[str] = []

    def write_then_die_on_second(con, spec, *args, **kwargs):
        if spec.key == "second" and "first" in written:
            raise KeyboardInterrupt  # the process dies between two SAEs
        real_write(con, spec, *args, **kwargs)
        written.append(spec.key)

    monkeypatch.setattr(job, "write_sae_tables", write_then_die_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_job(specs, config, model=helpers.tiny_model(), tokenizer=helpers.FakeTokenizer(), log=lambda *_: None)
    assert not db_path.exists(), "nothing the app would open"
    monkeypatch.setattr(job, "write_sae_tables", real_write)
    messages: list[str] = []
    timings = run_job(specs, config, model=helpers.tiny_model(), tokenizer=helpers.FakeTokenizer(), log=messages.append)
    assert [t.key for t in timings] == ["second"]
    assert any(m.startswith("resuming") for m in messages)
    assert sorted(r[0] for r in query(db_path, "SELECT sae_key FROM saes")) == ["first", "second"]


def test_saes_wanting_the_model_loaded_differently_cannot_share_a_build(tmp_path):
    """sae-lens's model_from_pretrained_kwargs: the no-processing defaults ask for nothing; a real request
    (centred writing weights) is passed on; two different requests stop the build before it starts."""
    import json

    from precompute.pipeline.job import ModelMismatch, build_model_kwargs

    plain = helpers.planted_sae_folder(tmp_path, name="plain")
    centred = helpers.planted_sae_folder(tmp_path, name="centred")
    for folder, kwargs in ((plain, {"center_writing_weights": False}), (centred, {"center_writing_weights": True})):
        cfg = json.loads((folder / "cfg.json").read_text())
        cfg["metadata"]["model_from_pretrained_kwargs"] = kwargs
        (folder / "cfg.json").write_text(json.dumps(cfg))
    config = JobConfig(model_name="tiny", corpus_path=tmp_path / "c.parquet", corpus_rows=(0, 1),
                       db_path=tmp_path / "x.duckdb")
    assert build_model_kwargs([SAESpec(key="plain", path=plain)], config) == ()
    assert build_model_kwargs([SAESpec(key="centred", path=centred)], config) == (("center_writing_weights", True),)
    with pytest.raises(ModelMismatch, match="centred"):
        build_model_kwargs([SAESpec(key="plain", path=plain), SAESpec(key="centred", path=centred)], config)


def test_an_sae_of_another_model_stops_the_build_before_any_work(tmp_path):
    """Its metadata.model_name names the model it was trained on; TransformerLens aliases are one model."""
    from precompute.pipeline.job import ModelMismatch, build_model_kwargs, same_model

    folder = helpers.planted_sae_folder(tmp_path)  # metadata.model_name "tiny"
    config = JobConfig(model_name="smollm2-135m-embedded", corpus_path=tmp_path / "c.parquet", corpus_rows=(0, 1),
                       db_path=tmp_path / "x.duckdb")
    with pytest.raises(ModelMismatch, match="`planted` on `tiny`. Pass --model"):
        build_model_kwargs([SAESpec(key="planted", path=folder)], config)
    with pytest.raises(ModelMismatch):
        run_job([SAESpec(key="planted", path=folder)], config)
    assert not (tmp_path / "x.duckdb").exists()
    assert same_model("gpt2-small", "gpt2") and same_model("tiny", "tiny") and not same_model("gpt2-small", "tiny")


def test_an_sae_of_another_width_is_refused_from_the_models_config_before_any_work(tmp_path):
    """The job's own check (for models the CLI's preflight has no constants for, a hub model's TransformerLens config):
    refused before the work file is opened, so the corrected rerun meets no leftover."""
    import pytest

    from precompute.loading.spec import SAESpec
    from precompute.pipeline.job import JobConfig, ModelMismatch, config_d_model, run_job
    from tests.precompute import bad_inputs as bad

    assert config_d_model("toy-hierarchy") == 64 and config_d_model("no-such-model-anywhere") is None
    folder = bad.sae_copy(tmp_path, bad.narrower_sae)
    db_path = tmp_path / "db" / "x.duckdb"
    config = JobConfig(model_name="toy-hierarchy", corpus_path=bad.TOY_CORPUS, corpus_rows=(0, 8), db_path=db_path,
                       absorption=None)
    with pytest.raises(ModelMismatch, match="48-wide activations"):
        run_job([SAESpec(key="narrow", path=Path(folder))], config, log=lambda *_: None)
    assert not db_path.parent.exists() or not any(db_path.parent.iterdir())
