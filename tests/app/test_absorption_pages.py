"""The absorption views (letter, token search, the latent page's panel, the overview's heatmap) rendered
headless against a real database with absorption rows.

The database is $EXPLORER_DB when set, else the shipped assets/demo.duckdb; the tests are skipped when it
has no absorption measurements (an older demo file). The words and latents they open are read from
that database, so they follow a rebuilt file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.database import DEFAULT_DB_PATH, DatabaseError, ExplorerDB
from tests.app.test_pages import run_page

DB_PATH = Path(os.environ.get("EXPLORER_DB") or DEFAULT_DB_PATH)

# Test fixtures read from the database (plain SQL is fine here: this is not app code).
_WORDS_BY_STATUS = """
WITH words AS (
    SELECT ltrim(v.token, ' ') AS word, bool_and(NOT pw.is_test) AS all_train,
           bool_or(pw.is_test AND pw.probe_logit <= 0) AS missed, bool_and(pw.is_test) AS all_test
    FROM probe_words pw JOIN probe_runs r USING (probe_run_id)
    JOIN vocab v ON v.model_name = r.model_name AND v.token_id = pw.token_id
    WHERE r.model_name = ? AND r.hook_name = ?
    GROUP BY 1
)
SELECT (SELECT min(word) FROM words WHERE all_train AND length(word) >= 4),
       (SELECT min(word) FROM words WHERE missed AND all_test AND length(word) >= 4)
"""
_FULLY_ABSORBED_WORD = """
SELECT ltrim(v.token, ' '), w.token_id, w.absorber
FROM absorption_words w JOIN vocab v ON v.model_name = ? AND v.token_id = w.token_id
JOIN sae_numbers n ON n.sae_num = w.sae_num
JOIN sae_letters l ON l.sae_key = n.sae_key AND l.task = w.task AND l.letter = w.letter
WHERE n.sae_key = ? AND w.task = 'first_letter' AND w.metric = 'projection' AND w.is_full_absorption AND l.included
  AND length(v.token) >= 5
  AND (SELECT count(*) FROM vocab v2 WHERE v2.model_name = ? AND ltrim(v2.token, ' ') = ltrim(v.token, ' ')) = 1
ORDER BY (SELECT count(*) FROM absorption_words w2 WHERE w2.sae_num = w.sae_num
          AND w2.absorber = w.absorber AND (w2.is_full_absorption OR w2.is_absorption)),
         w.probe_projection DESC
LIMIT 1
"""


@dataclass(frozen=True)
class Demo:
    sae_key: str
    model_name: str
    letter_s: dict  # sae_letter(sae_key, "s")
    excluded_letter: str | None  # a letter with probe F1 <= 0.6, if any
    absorbed_word: str  # a fully absorbed test word that is a single vocabulary entry
    absorbed_token_id: int
    absorber: int
    n_saes_for_word: int
    train_word: str | None  # every vocabulary form of it is a probe-training word (none in a cross-fitted build)
    missed_word: str | None  # a test word the probe gets wrong


@pytest.fixture(scope="module")
def demo() -> Demo:
    try:
        db = ExplorerDB(DB_PATH)
    except DatabaseError as error:
        pytest.skip(f"no usable database with absorption rows: {error}")
    try:
        summary = db.all_sae_absorption() if db.has_absorption_tables() else None
        if summary is None or summary.empty:
            pytest.skip(f"{DB_PATH} holds no absorption measurements")
        sae = db.sae(summary["sae_key"].iloc[0])
        key, model = sae.sae_key, sae.model_name
        letters = db.sae_letters(key)
        excluded = letters.loc[~letters["included"], "letter"]
        word, token_id, absorber = db._rows(_FULLY_ABSORBED_WORD, [model, key, model])[0]
        train_word, missed_word = db._rows(_WORDS_BY_STATUS, [model, sae.hook_name])[0]
        n_saes = db.token_absorption(model, token_id)["sae_key"].nunique()
        return Demo(key, model, db.sae_letter(key, "s"), excluded.iloc[0] if len(excluded) else None,
                    word, int(token_id), int(absorber), int(n_saes), train_word, missed_word)
    finally:
        db.close()


@pytest.fixture()
def demo_env(demo, monkeypatch) -> Demo:
    monkeypatch.setenv("EXPLORER_DB", str(DB_PATH))
    return demo


def chart_specs(at) -> dict[str, dict]:
    """Plotly charts on the page by widget key suffix -> figure spec."""
    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def link_labels(at) -> list[str]:
    return [p.proto.label for p in at.get("page_link")]


# --- letter page ---------------------------------------------------------------------------------
def test_letter_page_shows_probe_f1_intervals_table_and_charts(demo_env):
    row = demo_env.letter_s
    at = run_page("letter", sae=demo_env.sae_key, letter="s")
    assert not at.exception
    assert at.title[0].value == "Letter S"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["probe F1"] == f"{row['probe_f1']:.3f}"
    assert metrics["probe stability"] == f"{row['probe_stability']:.3f}"
    assert metrics["mean absorption fraction"] == f"{row['mean_absorption_fraction']:.3f}"
    captions = [c.value for c in at.caption]
    for low, high in [(row["absorption_fraction_low"], row["absorption_fraction_high"]),
                      (row["full_absorption_rate_low"], row["full_absorption_rate_high"])]:
        assert f"95% CI [{low:.3f}, {high:.3f}]" in captions
    classifiers = next(d.value for d in at.dataframe if "classifier" in d.value.columns)
    assert classifiers["F1"].iloc[0] == pytest.approx(row["probe_f1"])
    assert classifiers["F1"].iloc[1] == pytest.approx(row["main_f1"])
    assert len(classifiers) == 6  # probe, main, best, k-sparse, neuron, PCA
    charts = chart_specs(at)
    scatter = charts[f"letter_scatter_{demo_env.sae_key}_s"]
    plotted = sorted(x for trace in scatter["data"] for x in trace["customdata"])
    assert len(plotted) == len(set(plotted)) and len(plotted) > 100  # every latent once
    assert any(t["name"].startswith("split latent") or t["name"].startswith("main latent") for t in scatter["data"])
    k_bars = charts["letter_k_chart"]["data"][0]
    assert k_bars["marker"]["color"].count(k_bars["marker"]["color"][0]) >= row["n_split"]
    assert "How this is computed" in [e.proto.label for e in at.expander]
    assert any("16k latents" in c for c in captions)


def test_every_headline_number_names_the_function_that_computed_it(demo_env):
    """Page → contract/provenance.py → code: the help of each number names the file and function, and the named
    functions are the ones that compute it (the mean absorption fraction: the fold-and-word bootstrap)."""
    at = run_page("letter", sae=demo_env.sae_key, letter="s")
    helps = {m.label: m.proto.help for m in at.metric}
    assert "precompute/absorption/stats.py:fold_and_word_intervals" in helps["mean absorption fraction"]
    assert "precompute/absorption/projection.py:dense_projection_absorption" in helps["mean absorption fraction"]
    assert "precompute/absorption/probe.py:classifier_scores" in helps["probe F1"]
    assert "precompute/absorption/measure.py:combine_folds" in helps["split latents"]
    latent = run_page("latent", sae=demo_env.sae_key, latent="0")
    assert "precompute/pipeline/dashboards.py:latent_stats" in {m.label: m.proto.help for m in latent.metric}["density"]


def test_letter_page_links_absorbing_latents_and_lists_absorbed_words(demo_env):
    at = run_page("letter", sae=demo_env.sae_key, letter="s")
    words = next(d.value for d in at.dataframe if "absorber" in d.value.columns)
    assert {"word", "metric", "absorber", "probe cos", "P", "score"} <= set(words.columns)
    assert words["absorber"].str.contains(f"sae={demo_env.sae_key}&latent=").all()
    absorber_links = [label for label in link_labels(at) if label.startswith("Latent ")]
    absorbers = {int(label.split()[1]) for label in absorber_links}
    full = words[words["full"] == True]  # noqa: E712 (object column with None)
    assert len(full) > 0
    # the page links the 15 absorbers that took the most words: the commonest absorbers of full absorption among them
    counts = full["absorber"].map(lambda url: int(url.rsplit("=", 1)[1])).value_counts()
    assert len(absorbers) == min(15, len(set(words["absorber"])))
    assert set(counts.index[: min(3, len(counts))]) <= absorbers


MATRYOSHKA = "smollm2-l6-matryoshka-4k-k32"


def test_letter_page_flags_dense_absorbers_with_their_density(demo_env):
    """The Matryoshka's letter A is absorbed mostly by latent 57, which fires on ~19 % of tokens: the page names it
    dense and shows every absorber's density, read from the latents table."""
    db = ExplorerDB(DB_PATH)
    try:
        if MATRYOSHKA not in db.sae_keys():
            pytest.skip(f"{DB_PATH} holds no {MATRYOSHKA}")
        densities = db.letter_latent_cos(MATRYOSHKA, "a").set_index("latent")["density"]
    finally:
        db.close()
    assert densities[57] >= 0.1
    at = run_page("letter", sae=MATRYOSHKA, letter="a")
    assert not at.exception
    dense_links = [label for label in link_labels(at) if label.startswith("Latent ") and "(dense)" in label]
    assert any(label.startswith("Latent 57 ") and f"fires on {densities[57]:.1%} of tokens" in label
               for label in dense_links)
    assert any("absorbers are dense" in w.value for w in at.warning)
    words = next(d.value for d in at.dataframe if "absorber density" in d.value.columns)
    by_absorber = words.dropna(subset=["absorber"]).set_index(
        words.dropna(subset=["absorber"])["absorber"].map(lambda url: int(url.split("latent=")[1].split("&")[0])))
    assert by_absorber.loc[[57], "absorber density"].iloc[0] == pytest.approx(densities[57])


def test_letter_page_names_no_dense_absorber_where_none_is(demo_env):
    at = run_page("letter", sae="smollm2-l6-topk-4k-k32", letter="s")
    assert not at.exception
    labels = [label for label in link_labels(at) if label.startswith("Latent ")]
    assert labels and all("fires on" in label and "(dense)" not in label for label in labels)
    assert not any("absorbers are dense" in w.value for w in at.warning)


@pytest.mark.parametrize("bad", ["7", "ss", "' OR 1=1 --", "é"])
def test_bad_letter_shows_a_message(demo_env, bad):
    at = run_page("letter", sae=demo_env.sae_key, letter=bad)
    assert not at.exception
    assert any("single letter from a to z" in e.value for e in at.error), [e.value for e in at.error]


def test_missing_letter_defaults_to_s_in_the_url(demo_env):
    at = run_page("letter", sae=demo_env.sae_key)
    assert not at.exception
    assert at.query_params["letter"] in ("s", ["s"])
    assert at.title[0].value == "Letter S"


def test_choosing_a_letter_updates_the_url(demo_env):
    at = run_page("letter", sae=demo_env.sae_key, letter="s")
    at.selectbox(key="letter_select").set_value("t").run()
    assert not at.exception
    assert at.query_params["letter"] in ("t", ["t"])
    assert at.title[0].value == "Letter T"


def test_unreliable_letter_is_flagged(demo_env):
    if demo_env.excluded_letter is None:
        pytest.skip("every letter's probe has F1 > 0.6 in this database")
    at = run_page("letter", sae=demo_env.sae_key, letter=demo_env.excluded_letter)
    assert not at.exception
    assert any("unreliable letter" in w.value and "excluded from the SAE's headline means" in w.value
               for w in at.warning)


# --- token page ----------------------------------------------------------------------------------
def test_token_page_shows_one_row_per_sae_for_an_absorbed_word(demo_env):
    at = run_page("token", sae=demo_env.sae_key, token=demo_env.absorbed_word)
    assert not at.exception
    matrix = at.dataframe[0].value.set_index("SAE")  # the answer first: its verdict in every SAE and task
    assert matrix.iloc[:, 0].loc[demo_env.sae_key].startswith(f"fully absorbed by {demo_env.absorber}")
    tables = [d.value for d in at.dataframe if "absorbed" in d.value.columns]
    assert len(tables) >= 1  # first letters first, then one table per other task the word belongs to
    table = tables[0]
    assert len(table) == demo_env.n_saes_for_word
    row = table[table["SAE"] == demo_env.sae_key].iloc[0]
    assert row["full absorption"] == True  # noqa: E712
    assert row["absorber"].endswith(f"latent={demo_env.absorber}")
    assert 0 < row["absorber cos"] <= 1
    assert row["split latents fired"].startswith("0/")
    prompt = [c.value for c in at.code]
    assert any(f"{demo_env.absorbed_word} has the first letter:" in p for p in prompt)


def test_token_page_shows_the_absorbers_density_and_flags_a_dense_one(demo_env):
    """" app" is fully absorbed in the Matryoshka by latent 57 (fires on ~19 % of tokens: dense), in the TopK 4k k32
    by a token-aligned latent or not at all."""
    db = ExplorerDB(DB_PATH)
    try:
        if MATRYOSHKA not in db.sae_keys():
            pytest.skip(f"{DB_PATH} holds no {MATRYOSHKA}")
        density = float(db.letter_latent_cos(MATRYOSHKA, "a").set_index("latent")["density"][57])
    finally:
        db.close()
    at = run_page("token", sae=MATRYOSHKA, token="app")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "absorbed" in d.value.columns)
    row = table[table["SAE"] == MATRYOSHKA].iloc[0]
    assert row["absorber"].endswith("latent=57")
    assert row["absorber density"] == pytest.approx(density) and row["dense absorber"] == True  # noqa: E712
    sparse = table[(table["SAE"] != MATRYOSHKA) & table["absorber density"].notna()]
    assert (sparse["dense absorber"] == (sparse["absorber density"] >= 0.1)).all()


_MAIN_LATENT_ABSORBER = """
SELECT n.sae_key, ltrim(v.token, ' '), w.absorber, upper(w.letter)
FROM absorption_words w JOIN sae_numbers n ON n.sae_num = w.sae_num
JOIN vocab v ON v.model_name = ? AND v.token_id = w.token_id
JOIN sae_letter_folds f ON f.sae_key = n.sae_key AND f.task = w.task AND f.letter = w.letter AND f.fold = w.fold
WHERE w.task = 'first_letter' AND w.metric = 'projection' AND w.is_full_absorption AND w.absorber = f.main_latent
  AND length(v.token) >= 5
  AND (SELECT count(*) FROM vocab v2 WHERE v2.model_name = ? AND ltrim(v2.token, ' ') = ltrim(v.token, ' ')) = 1
ORDER BY n.sae_key, v.token LIMIT 1
"""


def test_an_absorber_that_is_the_classs_main_latent_is_said_to_be(demo_env):
    """A word whose recorded absorber is its letter's own main latent, which the k-sparse probe left out of the split
    latents (in the previous demo, " app" in the Matryoshka: latent 57). The page used to say "fully absorbed by latent
    57" and, next to it, "its letter's main latent 57", with nothing to reconcile the two."""
    db = ExplorerDB(DB_PATH)
    try:
        found = db._rows(_MAIN_LATENT_ABSORBER, [demo_env.model_name, demo_env.model_name])
    finally:
        db.close()
    if not found:
        pytest.skip(f"{DB_PATH} holds no fully absorbed word whose absorber is its letter's main latent")
    sae_key, word, absorber, letter = found[0]
    at = run_page("token", sae=sae_key, token=word)
    assert not at.exception
    lines = [line for m in at.markdown for line in m.value.splitlines() if f"`{sae_key}`" in line]
    assert lines and all(f"by latent [{absorber}]" in line and f"{letter}'s main latent (best encoder cosine with the "
                         "probe) but not one of its split latents" in line for line in lines), lines
    text = "\n".join(m.value for m in at.markdown)
    assert "partly absorbed (100%)" not in text


def test_unknown_word_is_explained(demo_env):
    at = run_page("token", sae=demo_env.sae_key, token="xqzzy")
    assert not at.exception
    assert any("not a single-token alphabetic word" in e.value for e in at.error)


def test_training_word_is_explained(demo_env):
    if demo_env.train_word is None:
        pytest.skip("a cross-fitted database measures every word: no probe-training words to explain")
    at = run_page("token", sae=demo_env.sae_key, token=demo_env.train_word)
    assert not at.exception
    assert any("probe-training word" in i.value and "cross-fitted build" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "SAE" in d.value.columns]


def test_word_the_probe_missed_is_explained(demo_env):
    if demo_env.missed_word is None:
        pytest.skip("the probe gets every test word right in this database")
    at = run_page("token", sae=demo_env.sae_key, token=demo_env.missed_word)
    assert not at.exception
    assert any("probe missed" in w.value for w in at.warning)


@pytest.mark.parametrize("bad, message", [("a" * 65, "longer than"), ("sn\x00ake", "non-printable")])
def test_bad_token_parameter_shows_a_message(demo_env, bad, message):
    at = run_page("token", sae=demo_env.sae_key, token=bad)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_typing_a_prefix_suggests_words(demo_env):
    at = run_page("token", sae=demo_env.sae_key)
    at.text_input(key="token_input").input(demo_env.absorbed_word[:3]).run()
    assert not at.exception
    assert at.query_params["token"] in (demo_env.absorbed_word[:3], [demo_env.absorbed_word[:3]])
    assert any(label.lower().startswith(demo_env.absorbed_word[:3].lower()) for label in link_labels(at))


# --- latent page and overview --------------------------------------------------------------------
def test_latent_page_shows_letter_profile_and_main_latent_role(demo_env):
    main = demo_env.letter_s["main_latent"]
    at = run_page("latent", sae=demo_env.sae_key, latent=str(main))
    assert not at.exception
    assert "Absorption (first-letter task)" in [s.value for s in at.subheader]
    profile = chart_specs(at)["latent_letter_profile"]["data"][0]
    assert profile["x"] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert any(label.startswith("Main latent for letter S") for label in link_labels(at))


def test_latent_page_shows_absorber_role_with_word_links(demo_env):
    at = run_page("latent", sae=demo_env.sae_key, latent=str(demo_env.absorber))
    assert not at.exception
    labels = link_labels(at)
    assert any(label.startswith("Absorber of letter") and demo_env.absorbed_word in label for label in labels)
    assert f"“{demo_env.absorbed_word}”" in labels


def test_overview_shows_absorption_table_and_heatmap(demo_env):
    at = run_page("overview")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "method band" in d.value.columns)
    assert demo_env.sae_key in table["SAE"].tolist()
    assert table["mean absorption fraction"].str.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]").all()
    heatmap = chart_specs(at)["overview_heatmap"]["data"]
    assert heatmap[0]["type"] == "heatmap" and len(heatmap[0]["x"]) == 26
    assert demo_env.sae_key in heatmap[0]["y"]
    assert "First-letter absorption" in [h.value for h in at.header]


# --- a database without absorption rows ------------------------------------------------------------
def test_pages_say_so_when_there_are_no_absorption_rows(app_env):
    for page, params in [("letter", {"letter": "s"}), ("token", {"token": "t7"}), ("latent", {"latent": "3"}),
                         ("overview", {})]:
        at = run_page(page, sae="planted", **params)
        assert not at.exception, page
        assert any("absorption" in i.value or "probe data" in i.value for i in at.info), page


def test_the_small_model_warning_names_every_sae_on_the_token_page_and_stays_off_the_toys_pages(demo_env):
    token = run_page("token", sae=MATRYOSHKA, token="app")
    captions = [c.value for c in token.caption]
    assert any("of these SAEs (1,024–4,096 latents) read a 135M-parameter model" in c for c in captions), captions
    assert not any("This SAE has" in c for c in captions)  # the page is about every SAE, not the sidebar's
    toy = run_page("letter", sae="toy-hierarchy-relu-32", task="toy_hierarchy", **{"class": "animal"})
    assert not toy.exception
    assert not any("135M" in c.value for c in toy.caption)
