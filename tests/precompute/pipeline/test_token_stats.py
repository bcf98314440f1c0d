"""The token in running text: token_latents (occurrences and top latents per token) and token_letters (how often a
token's first-letter latents fire on it), on hand-built codes with known answers and through the real job, with
the absorption stage (a fake that writes known sae_letters rows) running before the dashboards pass."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from backend.database import ExplorerDB
from precompute.pipeline import token_stats as ts
from precompute.pipeline.dashboards import SparseCodes
from tests import helpers


def codes_at(rows: np.ndarray, entries: list[tuple[int, int, int, float]]) -> SparseCodes:
    """Codes from (row, pos, latent, value) entries over `rows`."""
    n_rows, seq_len = rows.shape
    return SparseCodes(token_index=np.array([r * seq_len + p for r, p, _, _ in entries], dtype=np.int64),
                       latent=np.array([lat for *_, lat, _ in entries], dtype=np.int32),
                       value=np.array([v for *_, v in entries], dtype=np.float32),
                       n_rows=n_rows, seq_len=seq_len, n_tokens=n_rows * (seq_len - 1))


# --- known answers on hand-built codes -------------------------------------------------------------
def entries(stats: ts.TokenLatents) -> dict[int, list[tuple[int, float, float]]]:
    """token -> [(latent, mean act, fire rate)] in stored order."""
    found: dict[int, list] = {}
    for token, latent, act, rate in zip(stats.token_id, stats.latent, stats.mean_act, stats.fire_rate):
        found.setdefault(int(token), []).append((int(latent), pytest.approx(act), pytest.approx(rate)))
    return found


def test_top_latents_rank_by_mean_activation_over_every_occurrence():
    # Token 1 occurs 3 times (position 0 does not count), token 2 twice, token 3 once; token 9 only at position 0.
    rows = np.array([[9, 1, 2, 1], [9, 2, 1, 3]])
    codes = codes_at(rows, [(0, 1, 0, 1.0), (0, 3, 0, 1.0), (1, 2, 0, 1.0),  # latent 0: every token-1 occurrence
                            (0, 3, 1, 6.0),  # latent 1: one token-1 occurrence, but a higher mean (2.0 > 1.0)
                            (0, 2, 2, 0.5), (1, 3, 4, 2.0)])
    counts = ts.token_counts(codes, rows, first_position=1, d_sae=5)
    assert {t: int(counts.n_occurrences[t]) for t in np.flatnonzero(counts.n_occurrences)} == {1: 3, 2: 2, 3: 1}
    assert entries(ts.top_token_latents(counts, k=8)) == {1: [(1, 2.0, 1 / 3), (0, 1.0, 1.0)], 2: [(2, 0.25, 0.5)],
                                                           3: [(4, 2.0, 1.0)]}


def test_top_latents_keep_k_per_token_and_every_occurring_token_is_counted():
    rows = np.array([[0, 5, 5, 6]])
    codes = codes_at(rows, [(0, 1, lat, float(lat)) for lat in range(6)])
    counts = ts.token_counts(codes, rows, 1, d_sae=6)
    assert entries(ts.top_token_latents(counts, k=2)) == {5: [(5, 2.5, 0.5), (4, 2.0, 0.5)]}
    occurrences = ts.token_occurrences_table("k", counts).to_pylist()
    assert occurrences == [{"sae_key": "k", "token_id": 5, "n_occurrences": 2},  # token 6 occurs, nothing fires on it
                           {"sae_key": "k", "token_id": 6, "n_occurrences": 1}]


def letter_example():
    # Tokens 1 and 2 start with "s", 3 with "t" (no latents for t in this SAE: no row); token 4 is not alphabetic.
    rows = np.array([[0, 1, 1, 2, 1, 3, 4]])
    codes = codes_at(rows, [(0, 1, 2, 1.0), (0, 2, 2, 1.0),  # main latent 2: 2 of token 1's 3 occurrences
                            (0, 2, 3, 1.0), (0, 4, 3, 1.0),  # split latent 3: 2 of 3, one of them another one
                            (0, 3, 3, 1.0), (0, 5, 2, 1.0), (0, 6, 3, 1.0),
                            (0, 1, 0, 9.0), (0, 2, 0, 9.0), (0, 4, 0, 9.0), (0, 1, 1, 8.0)])  # 0 and 1: the top two
    counts = ts.token_counts(codes, rows, 1, d_sae=5)
    index = ts.letter_index(len(counts.n_occurrences), 5, np.array([1, 2, 3]), np.array(["s", "s", "t"]),
                            [ts.LetterLatents("s", 2, [2, 3])])
    return codes, rows, counts, index


def test_letter_rates_of_main_and_split_latents():
    codes, rows, counts, index = letter_example()
    stats = ts.token_letters(codes, rows, counts, index)
    assert stats.token_id.tolist() == [1, 2]
    assert stats.letter.tolist() == ["s", "s"] and stats.main_latent.tolist() == [2, 2]
    assert stats.main_fire_rate.tolist() == pytest.approx([2 / 3, 0.0])
    assert stats.any_split_fire_rate.tolist() == pytest.approx([1.0, 1.0])  # every occurrence has one of them


def test_split_latents_of_the_tokens_letter_are_kept_beyond_the_top_k():
    _, _, counts, index = letter_example()
    found = entries(ts.top_token_latents(counts, k=2, index=index))
    # Token 1: the top two (0, 1), then its letter's split latents 2 and 3 (each on 2 of 3 occurrences).
    assert found[1] == [(0, 9.0, 1.0), (1, 8 / 3, 1 / 3), (2, 2 / 3, 2 / 3), (3, 2 / 3, 2 / 3)]
    assert found[2] == [(3, 1.0, 1.0)]  # latent 2 never fires on token 2: no entry
    assert found[3] == [(2, 1.0, 1.0)]  # a "t" token: no letter latents added (there are none)
    assert entries(ts.top_token_latents(counts, k=2))[1] == found[1][:2]


def test_tables_round_the_stored_values():
    rows = np.array([[0, 1, 1, 1]])
    codes = codes_at(rows, [(0, 1, 0, 1.23456)])
    stats = ts.top_token_latents(ts.token_counts(codes, rows, 1, d_sae=2), k=4)
    table = ts.token_latents_table("k", stats, ts.Rounding(mean_act=2, fire_rate=3)).to_pylist()
    assert table == [{"sae_key": "k", "token_id": 1, "latent": 0, "mean_act": pytest.approx(0.41),
                      "fire_rate": pytest.approx(0.333)}]
    assert ts.rounded(np.array([0.41152]), 2)[0] == np.float32(0.41)


# --- through the job ------------------------------------------------------------------------------
# The fake absorption results: letter -> (main latent, split latents). The planted latent fires exactly on the
# planted token " snake"; the dead latent never fires. No row for x: " xylophone" gets no token_letters row.
PLANTED, DEAD = helpers.PLANTED_LATENT, helpers.DEAD_LATENT
FAKE = helpers.FakeAbsorption(measured=("measured",), letters={"s": (PLANTED, [PLANTED, DEAD]), "t": (DEAD, [DEAD])})
SNAKE, SUN, TEA, SKIN = helpers.PLANTED_TOKEN, 8, 9, 13  # " snake", " sun", "Tea", "skin" (helpers.RUNNING_WORDS)


def build(root: Path, monkeypatch, calls: list, absorption: bool = True, force: bool = False) -> list[str]:
    messages: list[str] = []
    helpers.build_running_text_database(root, FAKE, monkeypatch, calls, absorption=absorption, force=force,
                                        log=messages.append)
    return messages


def query(path: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    calls: list = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        messages = build(root, monkeypatch, calls)
    rows = np.array(pq.read_table(root / "corpus.parquet").column("input_ids").to_pylist())
    return root, rows, calls, messages


def test_the_absorption_stage_runs_before_the_dashboards(built):
    _, _, calls, _ = built
    assert calls == [("absorption", set())]  # no SAE had dashboards yet


def test_planted_latent_tops_its_token_with_fire_rate_one(built):
    root, rows, _, _ = built
    db = root / "explorer.duckdb"
    expected = int((rows[:, 1:] == SNAKE).sum())
    assert expected > 0
    assert query(db, "SELECT n_occurrences FROM token_occurrences WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured') AND token_id = ?",
                 [SNAKE]) == [(expected,)]
    top = query(db, "SELECT latent, mean_act, fire_rate FROM token_latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured') "
                    "AND token_id = ?", [SNAKE])
    assert top[0] == (PLANTED, pytest.approx(5.0, abs=0.05), 1.0)
    assert len(top) <= 3 and [t[1] for t in top] == sorted((t[1] for t in top), reverse=True)


def test_every_occurring_token_is_counted_and_the_planted_latent_fires_on_no_other(built):
    root, rows, _, _ = built
    db = root / "explorer.duckdb"
    counted = query(db, "SELECT token_id, n_occurrences FROM token_occurrences WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'measured')")
    ids, n = np.unique(rows[:, 1:], return_counts=True)
    assert counted == list(zip(ids.tolist(), n.tolist()))  # sorted by token id
    (n_tokens,), = query(db, "SELECT n_tokens FROM saes WHERE sae_key = 'measured'")
    assert sum(c for _, c in counted) == n_tokens
    assert query(db, "SELECT count(*) FROM token_latents WHERE token_id <> ? AND latent = ?", [SNAKE, PLANTED]) == [(0,)]
    per_token = query(db, "SELECT max(n) FROM (SELECT count(*) AS n FROM token_latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured') "
                          "GROUP BY token_id)")
    assert per_token == [(3,)]  # n_token_latents = 3 (the random latents fire on every token here)


def test_token_letters_give_the_rates_of_the_letters_latents(built):
    root, _, _, _ = built
    db = root / "explorer.duckdb"
    stored = {row[0] for row in query(db, "SELECT token_id FROM token_letters "
                                          "WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'measured')")}
    assert stored == {SNAKE, SUN, TEA, SKIN}  # none for " xylophone" (no x latents) or the absent " zebra"
    explorer = ExplorerDB(db)
    try:  # the letter and its main latent as the pages read them (from the token's text and sae_letters)
        (model,), = explorer._rows("SELECT DISTINCT model_name FROM saes")
        found = {token: next((r.letter, r.main_latent, r.main_fire_rate, r.any_split_fire_rate)
                             for r in explorer.token_letter_rates(model, token) if r.sae_key == "measured")
                 for token in stored}
    finally:
        explorer.close()
    assert found[SNAKE] == ("s", PLANTED, 1.0, 1.0)
    assert found[SUN] == found[SKIN] == ("s", PLANTED, 0.0, 0.0)
    assert found[TEA] == ("t", DEAD, 0.0, 0.0)
    # The split latents' own rates are in token_latents (the dead split latent never fires: no row).
    rates = query(db, "SELECT latent, fire_rate FROM token_latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'measured') AND token_id = ?", [SNAKE])
    assert (PLANTED, 1.0) in rates and DEAD not in [lat for lat, _ in rates]


def test_an_sae_without_absorption_results_has_no_token_letters(built):
    root, _, _, _ = built
    db = root / "explorer.duckdb"
    assert query(db, "SELECT count(*) FROM token_letters WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured')") == [(0,)]
    assert query(db, "SELECT count(*) FROM token_latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured')")[0][0] > 0
    assert query(db, "SELECT count(*) FROM token_occurrences WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'unmeasured')")[0][0] > 0


def test_absorption_after_a_dashboards_only_build_recomputes_the_dashboards_once(tmp_path, monkeypatch):
    calls: list = []
    build(tmp_path, monkeypatch, calls, absorption=False)
    db = tmp_path / "explorer.duckdb"
    assert query(db, "SELECT count(*) FROM token_letters") == [(0,)] and calls == []
    messages = build(tmp_path, monkeypatch, calls)
    assert any(m.startswith("recompute measured: its absorption results are newer") for m in messages)
    assert any(m.startswith("skip unmeasured") for m in messages)
    assert query(db, "SELECT count(*) FROM token_letters WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'measured')")[0][0] > 0
    again = build(tmp_path, monkeypatch, calls)
    assert not any(" tokens, pass " in m for m in again)  # nothing is recomputed the third time


def test_force_keeps_the_absorption_results_it_has_just_written(tmp_path, monkeypatch):
    calls: list = []
    build(tmp_path, monkeypatch, calls)
    db = tmp_path / "explorer.duckdb"
    before = query(db, "SELECT * FROM token_letters ORDER BY ALL")
    build(tmp_path, monkeypatch, calls, force=True)
    assert query(db, "SELECT count(*) FROM sae_letters WHERE sae_key = 'measured'") == [(2,)]
    assert query(db, "SELECT * FROM token_letters ORDER BY ALL") == before
    # A forced dashboards-only build drops them (the SAE may have changed since it was measured).
    build(tmp_path, monkeypatch, calls, absorption=False, force=True)
    assert query(db, "SELECT count(*) FROM sae_letters") == [(0,)]
    assert query(db, "SELECT count(*) FROM token_letters") == [(0,)]


# --- latent labels (precompute/pipeline/labels.py) -------------------------------------------------------------
def test_latent_top_tokens_rank_by_activation_mass_and_share_it():
    from precompute.pipeline import labels

    # latent 0: token 1 twice at 1.0 (mass 2), token 2 once at 3.0 (mass 3); latent 1 only on token 3
    rows = np.array([[9, 1, 2, 1], [9, 3, 0, 0]])
    codes = codes_at(rows, [(0, 1, 0, 1.0), (0, 3, 0, 1.0), (0, 2, 0, 3.0), (1, 1, 1, 4.0)])
    top = labels.latent_top_tokens(ts.token_counts(codes, rows, 1, 3), n_top=5)
    assert top.latent.tolist() == [0, 0, 1] and top.token_id.tolist() == [2, 1, 3]
    assert top.share.tolist() == pytest.approx([0.6, 0.4, 1.0])  # latent 2 never fired: no entry


def test_label_names_the_top_tokens_with_their_share_and_a_shared_initial():
    from precompute.pipeline.labels import label_text

    assert label_text([" Kosher", " Kefir", "ket", " the"], [0.2, 0.15, 0.06, 0.05]) == "'K…' words: Kosher, Kefir, ket (41 %)"
    assert label_text([" the", " a"], [0.5, 0.25]) == "the, a (75 %)"
    assert label_text(["\n", " snake"], [0.9, 0.1]) == "'\\n', snake (100 %)"
    assert label_text([" snake"], [1.0]) == "snake (100 %)"  # one word: no "words" prefix
    assert label_text([".", " 1", ","], [0.1, 0.05, 0.05]) == "'.', 1, ',' (20 %)"  # punctuation quoted
    assert label_text([" k", "k", "K", " kin"], [0.2, 0.1, 0.05, 0.05]) == "'K…' words: k, K, kin (40 %)"  # ' k' = 'k'
    assert label_text([" k", "K"], [0.2, 0.1]) == "k, K (30 %)"  # single letters are not a family of words


def test_every_latent_that_fired_has_a_label_and_the_planted_one_names_its_token(built):
    root, _, _, _ = built
    db = root / "explorer.duckdb"
    sae = "(SELECT sae_num FROM sae_numbers WHERE sae_key = 'measured')"
    assert query(db, f"SELECT label, top_token_ids, top_token_shares FROM latent_labels WHERE sae_num = {sae} AND latent = ?",
                 [PLANTED]) == [("snake (100 %)", [SNAKE], [1.0])]
    unlabelled = query(db, f"SELECT count(*) FROM latents x WHERE sae_num = {sae} AND (n_fired > 0) <> EXISTS "
                           f"(SELECT 1 FROM latent_labels l WHERE l.sae_num = x.sae_num AND l.latent = x.latent)")
    assert unlabelled == [(0,)]  # a label exactly for the latents that fired (the dead latent has none)
    assert query(db, f"SELECT count(*) FROM latent_labels WHERE sae_num = {sae} AND explanation IS NOT NULL") == [(0,)]


def test_a_build_labels_an_sae_migrated_without_labels_and_keeps_its_absorption_results(tmp_path, monkeypatch):
    calls: list = []
    build(tmp_path, monkeypatch, calls)
    db = tmp_path / "explorer.duckdb"
    before = query(db, "SELECT * FROM latent_labels ORDER BY ALL")
    with duckdb.connect(str(db)) as con:  # what a migration from schema v13 leaves: no labels
        con.execute("DELETE FROM latent_labels")
    messages = build(tmp_path, monkeypatch, calls, absorption=False)  # a dashboards-only build, not forced
    assert sum("its dashboards have no latent labels" in m for m in messages) == 2
    assert query(db, "SELECT * FROM latent_labels ORDER BY ALL") == before
    assert query(db, "SELECT count(*) FROM sae_letters WHERE sae_key = 'measured'") == [(2,)]
