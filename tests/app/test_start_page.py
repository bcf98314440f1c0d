"""The start page (the overview at `/`): its search box routes a word, a latent, an SAE or a class to the page that
answers it, keeps the query in the URL (?q=), and suggests the nearest match for what it does not know."""

from __future__ import annotations

from tests.app.test_pages import run_page
from tests.app.urls import assert_clean


def links(at) -> list[tuple[str, str, str]]:
    return [(p.proto.label, p.proto.page, p.proto.query_string) for p in at.get("page_link")]


def test_a_latent_query_from_the_url_links_to_that_latent(sweep_env):
    at = run_page("overview", q="w16/3")
    assert_clean(at, "/?q=w16/3")
    assert ("Open latent 3 of `w16` →", "latent", "sae=w16&latent=3") in links(at)


def test_a_latent_past_the_last_is_refused_with_a_suggestion(sweep_env):
    at = run_page("overview", q="w16/99")
    assert_clean(at, "/?q=w16/99")
    assert any("has latents 0–15" in w.value for w in at.warning)
    assert ("latent 15 of `w16` →", "latent", "sae=w16&latent=15") in links(at)


def test_a_misspelt_sae_suggests_the_nearest(sweep_env):
    at = run_page("overview", q="early-w9")
    assert any("No SAE `early-w9`" in w.value for w in at.warning)
    assert ("the latents of SAE `early-w8` →", "browse", "sae=early-w8") in links(at)


def test_typing_a_query_opens_its_page_and_keeps_it_in_the_url(sweep_env):
    at = run_page("overview")
    assert at.title[0].value == "Feature absorption explorer"
    assert any("[“short”](./token?token=short)" in m.value for m in at.markdown)
    at.text_input(key="start_q").input("t").run()
    assert not at.exception
    assert at.title[0].value == "Letter T", "a letter opens its Feature page"
    assert at.query_params.get("letter") == "t", "the page writes its canonical parameter"


def test_typing_a_word_opens_the_token_page(sweep_env):
    at = run_page("overview")
    at.text_input(key="start_q").input("cat").run()
    assert not at.exception
    assert at.query_params["token"] == "cat"


def test_a_label_search_lists_the_latents_whose_label_names_the_text(sweep_env):
    at = run_page("overview", q="label: t1")
    assert_clean(at, "/?q=label: t1")
    found = [link for link in links(at) if link[1] == "latent" and link[0].startswith("`")]  # not the SAE cards'
    assert len(found) == 20, "N_LABEL_MATCHES of them: the tiny vocabulary has many t1… tokens"
    assert found, "the sweep's latents fire on tokens t1, t10, ... so some label names one"
    assert all("t1" in label.lower() for label, _, _ in found)
    at = run_page("overview", q="label: no-such-token-anywhere")
    assert any("No latent's label contains" in i.value for i in at.info)
