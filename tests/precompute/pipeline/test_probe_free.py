"""Probe-free absorption scores (precompute/pipeline/probe_free.py): planted suspects get the top scores, blocked computation
equals the plain one, the validation's statistics have known answers, and the build stores rows as the DDL says."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch

from precompute.pipeline import probe_free as pf
from tests import helpers


def test_a_latent_whose_decoder_leaves_its_encoder_tops_enc_dec_and_a_child_names_its_denser_parent():
    torch.manual_seed(0)
    enc = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    dec = enc.clone()
    dec[2] = -enc[2]  # encoder and decoder diverge
    dec[4] = torch.nn.functional.normalize(enc[0] + 0.1 * enc[4], dim=0)  # child of latent 0
    density = np.array([0.5, 0.1, 0.1, 0.1, 0.01, 0.1])  # latent 0 is the densest
    scores = pf.latent_scores(enc.T, dec, density)
    assert int(np.argmax(scores.enc_dec)) == 2 and scores.enc_dec[2] == pytest.approx(2.0)
    assert np.allclose(np.delete(scores.enc_dec, [2, 4]), 0, atol=1e-6)
    assert int(np.argmax(scores.parent)) == 4 and scores.parent_latent[4] == 0
    assert scores.parent_latent[0] == -1 and scores.parent[0] == 0  # nothing is denser than the densest
    assert scores.density[0] == 1.0 and scores.density[4] == 0.0


def test_parent_scores_in_blocks_equal_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(1)
    dec = torch.tensor(rng.normal(size=(50, 8)), dtype=torch.float32)
    density = rng.random(50).round(1)  # ties: an equally dense latent is not a parent
    monkeypatch.setattr(pf, "MAX_BLOCK_ELEMENTS", 7 * 50)  # blocks of 7 rows
    assert pf.block_rows(50) == 7
    score, parent = pf.parent_scores(dec, density)
    unit = dec.numpy() / np.linalg.norm(dec.numpy(), axis=1, keepdims=True)
    cos = np.where(density[None, :] > density[:, None], unit @ unit.T, -2.0)
    expected = np.where(cos.max(axis=1) > -2, cos.max(axis=1).clip(0), 0)
    assert np.allclose(score, expected, atol=1e-5)
    has_parent = (cos > -2).any(axis=1)
    assert np.array_equal(parent[has_parent], cos.argmax(axis=1)[has_parent]) and (parent[~has_parent] == -1).all()


def test_validation_of_a_perfect_and_a_reversed_score():
    label = np.zeros(100, bool)
    label[:10] = True
    scores = pf.LatentScores(enc_dec=label.astype(float), parent=-label.astype(float),
                             parent_latent=np.full(100, -1), density=np.linspace(0, 1, 100))
    config = pf.ValidationConfig(top_share=0.1, resamples=50)
    rows = {r.score: r for r in pf.validation_rows("s", scores, np.ones(100, bool), {"full": label}, config)}
    perfect, reversed_ = rows["enc_dec"], rows["parent"]
    assert (perfect.auc.value, perfect.precision.value, perfect.recall.value) == (1.0, 1.0, 1.0)
    assert perfect.auc.low == 1.0 and perfect.n_top == 10 and perfect.base_rate == 0.1
    assert (reversed_.auc.value, reversed_.precision.value, reversed_.recall.value) == (0.0, 0.0, 0.0)
    assert rows["density"].auc.value == 0.0  # the absorbers are the rarest latents here


def test_too_few_absorbers_are_counted_not_ranked():
    label = np.zeros(50, bool)
    label[:4] = True
    scores = pf.LatentScores(np.arange(50.0), np.arange(50.0), np.full(50, -1), np.linspace(0, 1, 50))
    rows = pf.validation_rows("s", scores, np.ones(50, bool), {"full": label}, pf.ValidationConfig())
    assert all(r.auc is None and r.precision is None and r.n_absorbers == 4 and r.n_resamples == 0 for r in rows)


@pytest.fixture(scope="module")
def suspect_db(tmp_path_factory):
    return helpers.build_suspect_database(tmp_path_factory.mktemp("suspect"))


def stored(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_build_stores_every_latent_and_the_planted_suspects_rank_first(suspect_db):
    rows = stored(suspect_db, "SELECT latent, enc_dec_score, parent_score, parent_latent FROM latent_scores "
                              "WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'suspect') ORDER BY latent")
    assert [r[0] for r in rows] == list(range(helpers.SUSPECT_D_SAE))
    alive = {r[0] for r in stored(suspect_db, "SELECT latent FROM latents WHERE n_fired > 0")}
    ranked = [r for r in rows if r[0] in alive]
    assert max(ranked, key=lambda r: r[1])[0] == helpers.SUSPECT_ENC_DEC and rows[helpers.SUSPECT_ENC_DEC][1] == 2.0
    assert max(ranked, key=lambda r: r[2])[0] == helpers.SUSPECT_CHILD
    assert rows[helpers.SUSPECT_CHILD][3] == helpers.SUSPECT_PARENT
    assert rows[helpers.SUSPECT_PARENT][3] is None  # the densest latent has no parent


def test_stored_rows_match_the_ddl(suspect_db):
    types = dict(stored(suspect_db, "SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_name = 'latent_scores'"))
    assert types == {"sae_num": "INTEGER", "latent": "INTEGER", "enc_dec_score": "FLOAT", "parent_score": "FLOAT",
                     "parent_latent": "INTEGER"}
    assert stored(suspect_db, "SELECT count(*) FROM latent_scores WHERE enc_dec_score IS NULL OR parent_score IS NULL "
                              "OR enc_dec_score NOT BETWEEN 0 AND 2 OR parent_score NOT BETWEEN 0 AND 1")[0][0] == 0


def test_validation_against_the_planted_absorbers_has_the_known_answers(suspect_db):
    rows = {(r[0], r[1]): r[2:] for r in stored(suspect_db, """
        SELECT score, labels, n_latents, n_absorbers, n_top, base_rate, auc, precision, recall, precision_low,
               precision_high FROM score_validation WHERE sae_key = 'suspect'""")}
    assert len(rows) == 6
    n_latents, n_absorbers, n_top, base_rate, auc, precision, recall, low, high = rows[("enc_dec", "full")]
    assert (n_absorbers, n_top) == (len(helpers.SUSPECT_ABSORBERS), 1)
    assert base_rate == pytest.approx(n_absorbers / n_latents)
    assert (precision, recall) == (1.0, pytest.approx(1 / n_absorbers))  # the top latent is SUSPECT_ENC_DEC
    assert low <= precision <= high
    # two absorbers above every other latent, the other four tied with the nine non-absorbers at 0
    assert auc == pytest.approx((2 * 9 + 0.5 * 4 * 9) / (6 * 9))
    assert rows[("enc_dec", "paper")][4:] == (None,) * 5  # no ablation rows: nothing to rank


def test_remeasured_absorption_drops_the_validation_and_the_next_stage_recomputes_it(suspect_db, tmp_path):
    from precompute.storage import writer as db

    path = tmp_path / "copy.duckdb"
    path.write_bytes(suspect_db.read_bytes())
    with duckdb.connect(str(path)) as con:
        db.delete_absorption(con, "suspect", "first_letter")
        assert con.execute("SELECT count(*) FROM score_validation").fetchall()[0][0] == 0
        db.delete_sae_dashboards(con, "suspect")
        assert con.execute("SELECT count(*) FROM latent_scores").fetchall()[0][0] == 0


def per_resample_rank_statistics(score: np.ndarray, label: np.ndarray, config: pf.ValidationConfig):
    """rank_statistics as first written: roc_auc_score and precision_recall_at once per resample."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(config.seed)
    aucs, precisions, recalls = [], [], []
    for _ in range(config.resamples):
        idx = rng.integers(0, len(score), len(score))
        if label[idx].min() == label[idx].max():
            continue
        aucs.append(roc_auc_score(label[idx], score[idx]))
        p, r = pf.precision_recall_at(score[idx], label[idx], config.top_share)
        precisions.append(p)
        recalls.append(r)
    precision, recall = pf.precision_recall_at(score, label, config.top_share)
    return (pf.interval(aucs, float(roc_auc_score(label, score))), pf.interval(precisions, precision),
            pf.interval(recalls, recall))


@pytest.mark.parametrize("n, decimals", [(999, None), (1000, 1), (41, 1)])  # odd and even draws, ties in scores
def test_all_resamples_at_once_give_the_per_resample_intervals(n, decimals):
    rng = np.random.default_rng(n)
    score = rng.normal(size=n).astype(np.float32)
    if decimals is not None:
        score = np.round(score, decimals)
    label = rng.random(n) < 0.05
    label[:2] = True  # some absorbers even in the small case; a few resamples still draw none and are skipped
    config = pf.ValidationConfig(resamples=200)
    for fast, slow in zip(pf.rank_statistics(score, label, config), per_resample_rank_statistics(score, label, config),
                          strict=True):
        for field in ("value", "low", "high"):
            assert getattr(fast, field) == pytest.approx(getattr(slow, field), abs=1e-12)
