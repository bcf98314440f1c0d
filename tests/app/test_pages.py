"""The Streamlit app rendered headless with AppTest, driven only by URL query parameters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests import helpers

TIMEOUT = 60
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def run_page(page_name: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page_name != "overview":
        at.switch_page(f"views/{page_name}.py")
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
    return at


def all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title] + [s.value for s in at.subheader]
    parts += [c.value for c in at.caption] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_overview_lists_the_sae(app_env):
    at = run_page("overview")
    assert not at.exception
    assert any(s.value == "planted" for s in at.subheader)
    assert at.dataframe[0].value["SAE"].tolist() == ["planted", "second"]


def test_latent_page_shows_highlighted_contexts_histogram_logits_neighbours(app_env):
    at = run_page("latent", sae="planted", latent=str(helpers.PLANTED_LATENT))
    assert not at.exception
    assert at.title[0].value == f"Latent {helpers.PLANTED_LATENT}"
    contexts = [m.value for m in at.markdown if 'class="ctx"' in m.value]
    assert len(contexts) >= 20
    peak = re.compile(r'class="tok act peak"[^>]*>([^<]*)</span>')
    assert all(peak.search(c).group(1) == f"&nbsp;t{helpers.PLANTED_TOKEN}" for c in contexts[:20])
    assert len(at.get("plotly_chart")) == 1
    assert len([d for d in at.dataframe if "logit" in d.value.columns]) == 2  # promoted and suppressed logits
    # "second" is the same SAE under another key: the latent matches itself there.
    matches = next(d.value for d in at.dataframe if "first-letter role" in d.value.columns)
    assert matches["latent"].tolist() == [f"./latent?sae=second&latent={helpers.PLANTED_LATENT}"]
    neighbour_links = [p for p in at.get("page_link") if p.proto.label.startswith("latent ")]
    assert len(neighbour_links) == 7


@pytest.mark.parametrize("bad, message", [
    ("-1", "must be a whole number"),
    ("abc", "must be a whole number"),
    ("8", "out of range"),
    ("99999999999999999999", "must be a whole number"),
    ("1; DROP TABLE latents", "must be a whole number"),
    ("٣", "must be a whole number"),  # unicode digit
])
def test_bad_latent_parameter_shows_a_message(app_env, bad, message):
    at = run_page("latent", sae="planted", latent=bad)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("bad", ["nope", "' OR 1=1 --", "名前", "x" * 500])
def test_unknown_sae_shows_a_message(app_env, bad):
    at = run_page("latent", sae=bad, latent="1")
    assert not at.exception
    assert any("Unknown SAE" in e.value for e in at.error)


def test_dead_latent_is_explained(app_env):
    at = run_page("latent", sae="planted", latent=str(helpers.DEAD_LATENT))
    assert not at.exception
    assert any("never fired" in w.value for w in at.warning)


def test_next_button_moves_to_the_next_latent_in_the_url(app_env):
    at = run_page("latent", sae="planted", latent="2")
    at.button(key="latent_next").click().run()
    assert at.query_params["latent"] == ["3"] or at.query_params["latent"] == "3"
    assert at.title[0].value == "Latent 3"


def test_browse_finds_planted_latent_by_context_token(app_env):
    at = run_page("browse", sae="planted", q=f"t{helpers.PLANTED_TOKEN}")
    assert not at.exception
    frame = at.dataframe[0].value
    assert frame["latent"].iloc[0] == helpers.PLANTED_LATENT


def test_browse_sorted_by_density(app_env):
    at = run_page("browse", sae="planted", sort="density_asc")
    assert not at.exception
    densities = at.dataframe[0].value["density"].tolist()
    assert densities == sorted(densities)


@pytest.mark.parametrize("params, message", [
    ({"sort": "evil"}, "`sort` must be one of"),
    ({"page": "-3"}, "`page` must be"),
    ({"page": "400"}, "past the last page"),
    ({"q": "a" * 300}, "longer than"),
])
def test_bad_browse_parameters_show_a_message(app_env, params, message):
    at = run_page("browse", sae="planted", **params)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_missing_database_shows_a_message(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_DB", str(tmp_path / "missing.duckdb"))
    at = run_page("overview")
    assert not at.exception
    assert any("No explorer database" in e.value for e in at.error)


def test_browse_opens_a_latent_by_id(app_env):
    at = run_page("browse", sae="planted")
    at.number_input(key="browse_latent_id").set_value(4).run()
    assert not at.exception
    assert at.title[0].value == "Latent 4"


def test_sae_in_the_url_wins_over_the_sidebar_state(app_env):
    at = run_page("latent", sae="second", latent="2")
    assert at.selectbox(key="sidebar_sae").value == "second"
    assert "`second`" in at.caption[0].value or "second" in all_text(at)
    assert at.title[0].value == "Latent 2"


def test_choosing_another_sae_opens_the_best_match_with_a_note(app_env):
    """`second` is `planted` under another key: each latent's closest decoder direction there is itself."""
    at = run_page("latent", sae="second", latent="2")
    at.selectbox(key="sidebar_sae").set_value("planted").run()
    assert not at.exception
    assert at.query_params["sae"] in ("planted", ["planted"])
    assert at.title[0].value == "Latent 2"
    assert any("closest decoder direction in `planted` to latent 2 of `second` (cosine 1.00)" in i.value for i in at.info)
    assert at.number_input(key="latent_jump").value == 2


def test_choosing_an_sae_at_another_hook_resets_the_latent(sweep_env):
    at = run_page("latent", sae="w16", latent="3")
    at.selectbox(key="sidebar_sae").set_value("early-w8").run()
    assert not at.exception
    assert at.title[0].value == "Latent 0"
    assert not any("closest decoder direction" in i.value for i in at.info)
    assert at.number_input(key="latent_jump").value == 0


def test_the_id_box_follows_the_url_after_next_and_previous(app_env):
    at = run_page("latent", sae="planted", latent="3")
    at.button(key="latent_next").click().run()
    assert at.title[0].value == "Latent 4" and at.number_input(key="latent_jump").value == 4
    at.button(key="latent_prev").click().run()
    at.button(key="latent_prev").click().run()
    assert at.title[0].value == "Latent 2" and at.number_input(key="latent_jump").value == 2
    at.number_input(key="latent_jump").increment().run()  # +/- count from the latent shown, not a stale value
    assert at.title[0].value == "Latent 3"


def test_url_without_sae_opens_the_first_and_keeps_the_latent(app_env):
    at = run_page("latent", latent="4")
    assert not at.exception
    assert at.title[0].value == "Latent 4"
    assert at.query_params["sae"] in ("planted", ["planted"])


def test_browse_token_search_falls_back_to_top_contexts_without_the_running_text_index(sweep_db, tmp_path, monkeypatch):
    """A database without the running-text index (migrated from v6) still answers a token search, from the
    stored top contexts, and says which search it ran."""
    import shutil

    import duckdb

    path = tmp_path / "no-index.duckdb"
    shutil.copyfile(sweep_db, path)
    with duckdb.connect(str(path)) as con:
        for table in ("token_latents", "token_occurrences", "token_letters"):
            con.execute(f"DELETE FROM {table}")
        token = con.execute("""SELECT v.token FROM contexts c JOIN sequences s ON s.seq_id = c.seq_id
                               JOIN vocab v ON v.token_id = s.tokens[c.pos + 1]
                               WHERE c.sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'w8')
                                 AND c.kind = 0 LIMIT 1""").fetchall()[0][0]
    monkeypatch.setenv("EXPLORER_DB", str(path))
    at = run_page("browse", sae="w8", q=token.strip(), **{"in": "contexts"})
    assert not at.exception
    assert any("not computed" in i.value for i in at.info)
    assert any(f"top contexts peak on “{token.strip()}”" in h.value for h in at.subheader)
    assert at.dataframe and "hits" in at.dataframe[0].value.columns


def test_a_url_without_an_sae_opens_the_databases_default(sweep_env):
    """No default recorded (the sweep database is written without write_meta's choice): the rule's, the widest SAE
    at the hook with the most SAEs (w32 of w8, w16, w32), not the first key."""
    at = run_page("latent", latent="1")
    assert not at.exception
    assert at.query_params["sae"] in ("w32", ["w32"])
    assert at.selectbox(key="sidebar_sae").value == "w32"


def test_the_demo_opens_its_main_sae(monkeypatch):
    from backend.database import DEFAULT_DB_PATH

    monkeypatch.setenv("EXPLORER_DB", str(DEFAULT_DB_PATH))
    at = run_page("overview")
    assert at.query_params["sae"] in ("smollm2-l6-topk-4k-k32", ["smollm2-l6-topk-4k-k32"])


def test_the_small_model_warning_names_the_right_saes_and_only_where_it_applies():
    from contract.rows import SaeRow
    from views.absorption_ui import caveat_text

    def sae(key: str, model: str, width: int) -> SaeRow:
        import dataclasses

        fields = {field.name: None for field in dataclasses.fields(SaeRow)}
        return SaeRow(**{**fields, "sae_key": key, "model_name": model, "d_sae": width})

    smol, toy = "smollm2-135m-embedded", "toy-hierarchy"
    one = caveat_text([sae("a", smol, 4096)])
    assert one.startswith("This SAE has 4,096 latents and reads a 135M-parameter model (`smollm2-135m-embedded`)")
    several = caveat_text([sae("a", smol, 1024), sae("b", smol, 4096), sae("t", toy, 32)])
    assert several.startswith("2 of these SAEs (1,024–4,096 latents) read a 135M-parameter model")
    assert caveat_text([sae("t", toy, 32)]) is None  # the toy world: no language model to warn about
    assert caveat_text([sae("g", "gemma-2-2b", 16384)]) is None
