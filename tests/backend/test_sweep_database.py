"""The accessors behind the views that compare SAEs, on a small sweep built by the real precompute job
(tests/helpers.py: SWEEP, with synthetic absorption rows of known value)."""

from __future__ import annotations

import pytest

from backend.database import ExplorerDB
from tests import helpers


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    explorer = ExplorerDB(helpers.build_sweep_database(tmp_path_factory.mktemp("sweep")))
    yield explorer
    explorer.close()


def test_saes_carry_the_training_architecture(db):
    saes = db.saes().set_index("sae_key")
    for sae in helpers.SWEEP:
        assert saes.loc[sae.key, "training_architecture"] == sae.training_architecture
        assert saes.loc[sae.key, "architecture"] == "standard"  # what sae-lens saved
    assert db.sae("w32")["training_architecture"] == "batchtopk"


def test_sae_comparison_has_every_sae_and_absorption_numbers_where_measured(db):
    frame = db.sae_comparison().set_index("sae_key")
    assert frame.index.tolist() == ["early-w8", "w8", "w16", "w32"]
    assert frame["has_absorption"].tolist() == [True, True, True, False]
    for key, numbers in helpers.SWEEP_ABSORPTION.items():
        row = frame.loc[key]
        for name, column in (("frac", "mean_absorption_fraction"), ("full", "full_absorption_rate"),
                             ("paper", "paper_absorption_rate")):
            assert (row[column], row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx(numbers[name])
        assert row["mean_num_split_latents"] == pytest.approx(numbers["split"])
        assert (row["mean_main_precision"], row["mean_main_recall"]) == pytest.approx((numbers["p"], numbers["r"]))
    assert frame.loc["w32", ["mean_absorption_fraction", "mean_main_recall"]].isna().all()
    assert frame["d_sae"].tolist() == [8, 8, 16, 32] and (frame["explained_variance"] > 0).all()


def test_latent_matches_find_the_planted_direction_in_each_other_sae_at_the_hook(db):
    matches = db.latent_matches("w8", 3)
    assert matches["other_sae_key"].tolist() == ["w16", "w32"]  # by width; early-w8 is at another hook
    assert matches["other_latent"].tolist() == [11, 20]
    assert matches["cosine"].tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    assert matches["d_sae"].tolist() == [16, 32]
    assert matches["training_architecture"].tolist() == ["topk", "batchtopk"]
    assert (matches["density"] > 0).all()
    assert db.latent_matches("early-w8", 3).empty


def test_matched_latent_roles(db):
    roles = db.latent_match_roles("w16", 11)  # matches: w8 latent 3 (split for s, absorber of t), w32 latent 20
    assert sorted(map(tuple, roles[["sae_key", "role", "letter"]].values.tolist())) == \
        [("w8", "absorber", "t"), ("w8", "split", "s")]
    assert roles.loc[roles["role"] == "absorber", "n_words"].tolist() == [1]
    roles = db.latent_match_roles("w8", 3)  # matches: w16 latent 11 (main latent for t)
    assert roles[["sae_key", "role", "letter"]].values.tolist() == [["w16", "main", "t"]]


def test_token_absorption_carries_each_saes_size(db):
    frame = db.token_absorption("tiny", helpers.SWEEP_WORD_TOKEN)
    assert frame["sae_key"].tolist() == ["early-w8", "w8", "w16"]
    assert frame["d_sae"].tolist() == [8, 8, 16] and frame["layer"].tolist() == [0, 1, 1]
    assert frame["training_architecture"].tolist() == ["standard", "standard", "topk"]
