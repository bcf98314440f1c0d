"""The probe-free absorption scores in the app: the latent page shows a planted suspect's scores, ranks and the
measured precision of each score; Browse sorts by them, labelled with that precision; SAEs without scores or
without enough absorbers say so."""

from __future__ import annotations

import duckdb
import pytest

from tests import helpers
from tests.app.test_pages import all_text, run_page


@pytest.fixture(scope="module")
def suspect_db(tmp_path_factory) -> tuple[str, int]:
    """The database and its alive latents, counted before the app holds a connection to it."""
    path = helpers.build_suspect_database(tmp_path_factory.mktemp("suspect_app"))
    with duckdb.connect(str(path), read_only=True) as con:
        return path, con.execute("SELECT count(*) FROM latents WHERE n_fired > 0").fetchall()[0][0]


@pytest.fixture()
def suspect_env(suspect_db, monkeypatch) -> int:
    """$EXPLORER_DB set to the suspect database; its number of alive latents."""
    monkeypatch.setenv("EXPLORER_DB", str(suspect_db[0]))
    return suspect_db[1]


def test_the_latent_page_ranks_the_planted_suspect_first_with_its_measured_precision(suspect_env):
    at = run_page("latent", sae="suspect", latent=str(helpers.SUSPECT_ENC_DEC))
    assert not at.exception
    text = all_text(at)
    assert "Absorption suspect without a probe" in text
    assert f"**encoder–decoder divergence** 2.000 — rank 1 of {suspect_env} alive latents" in text
    # the top 5 % of 15 alive latents is this one latent, a planted absorber
    assert "precision 1.00 [" in text and f"against {len(helpers.SUSPECT_ABSORBERS)} full absorbers (projection metric, ≥ 3 fully absorbed" in text
    assert "Most suspect by encoder–decoder divergence →" in [p.proto.label for p in at.get("page_link")]


def test_the_latent_page_names_a_child_s_denser_parent(suspect_env):
    at = run_page("latent", sae="suspect", latent=str(helpers.SUSPECT_CHILD))
    assert not at.exception
    assert "**denser-parent cosine** 0.981 — rank 1 of" in all_text(at)
    labels = [p.proto.label for p in at.get("page_link")]
    assert f"Its denser parent candidate: latent {helpers.SUSPECT_PARENT} →" in labels


@pytest.mark.parametrize("sort, first", [("enc_dec", helpers.SUSPECT_ENC_DEC), ("parent", helpers.SUSPECT_CHILD)])
def test_browse_sorts_by_a_score_labelled_with_its_precision(suspect_env, sort, first):
    at = run_page("browse", sae="suspect", sort=sort)
    assert not at.exception
    frame = at.dataframe[0].value
    assert frame["latent"].iloc[0] == first
    assert len(frame) == suspect_env  # dead latents are not suspects
    column = {"enc_dec": "enc_dec_score", "parent": "parent_score"}[sort]
    assert frame[column].tolist() == sorted(frame[column], reverse=True)
    box = at.selectbox(key="browse_sort")
    assert box.value == sort and "precision 1.00 in the top 5%" in box.format_func(sort)
    assert "Measured on this SAE: AUC" in all_text(at)


def test_a_score_sort_of_a_token_search_ranks_the_found_latents(suspect_env):
    at = run_page("browse", sae="suspect", sort="enc_dec", q=f"t{helpers.PLANTED_TOKEN}")
    assert not at.exception
    scores = at.dataframe[0].value["enc_dec_score"].tolist()
    assert scores == sorted(scores, reverse=True)


def test_an_sae_with_too_few_absorbers_says_its_scores_are_not_measured(sweep_env):
    at = run_page("latent", sae="w8", latent="0")
    assert not at.exception
    assert "Not measured in this SAE: it has 0 probe-found full absorbers (projection metric, ≥ 3" in all_text(at)
    at = run_page("browse", sae="w32", sort="parent")  # w32 has no absorption results
    assert not at.exception
    assert "no probe-based absorption results to check the score against" in all_text(at)


def test_a_database_without_scores_says_so(tiny_db, tmp_path, monkeypatch):
    path = tmp_path / "unscored.duckdb"
    path.write_bytes(tiny_db.read_bytes())
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM latent_scores")
    monkeypatch.setenv("EXPLORER_DB", str(path))
    at = run_page("browse", sae="planted", sort="enc_dec")
    assert not at.exception
    assert "not computed for `planted`" in all_text(at)
    at = run_page("latent", sae="planted", latent="1")
    assert not at.exception
    assert "probe-free scores are not computed" in all_text(at)
