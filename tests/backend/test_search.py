"""backend/search.py: every kind of query the start page's search box takes lands on the page that answers it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.search import MAX_QUERY, LabelSearch, NoRoute, Route, SearchContext, route

CONTEXT = SearchContext(
    widths={"smollm2-l6-topk-4k-k32": 4096, "smollm2-l6-topk-1k-k32": 1024},
    default_sae="smollm2-l6-topk-4k-k32",
    task_classes={"first_letter": tuple("abcdefghijklmnopqrstuvwxyz"), "wordnet_category": ("animal", "food")},
)


@pytest.mark.parametrize(("query", "page", "params"), [
    ("3783", "latent", {"sae": "smollm2-l6-topk-4k-k32", "latent": "3783"}),
    (" 3783 ", "latent", {"sae": "smollm2-l6-topk-4k-k32", "latent": "3783"}),
    ("smollm2-l6-topk-1k-k32/17", "latent", {"sae": "smollm2-l6-topk-1k-k32", "latent": "17"}),
    ("smollm2-l6-topk-1k-k32 : 17", "latent", {"sae": "smollm2-l6-topk-1k-k32", "latent": "17"}),
    ("smollm2-l6-topk-1k-k32", "browse", {"sae": "smollm2-l6-topk-1k-k32"}),
    ("s", "letter", {"task": "first_letter", "class": "s"}),
    ("K", "letter", {"task": "first_letter", "class": "k"}),
    ("Animal", "letter", {"task": "wordnet_category", "class": "animal"}),
    ("snake", "token", {"token": "snake"}),
    ("the  cat sat", "token", {"token": "the cat sat"}),
    ("１２", "token", {"token": "１２"}),  # not an ASCII id: searched as text
])
def test_each_kind_of_query_opens_the_page_that_answers_it(query, page, params):
    found = route(query, CONTEXT)
    assert isinstance(found, Route)
    assert (found.page, found.params) == (page, params)


def test_a_latent_past_the_sae_s_last_is_refused_with_its_last_latent_suggested():
    found = route("smollm2-l6-topk-1k-k32/1024", CONTEXT)
    assert isinstance(found, NoRoute) and "0–1,023" in found.message
    assert [(s.page, s.params) for s in found.suggestions] == [("latent", {"sae": "smollm2-l6-topk-1k-k32",
                                                                            "latent": "1023"})]


def test_a_misspelt_sae_key_suggests_the_nearest_keys():
    found = route("smollm2-l6-topk-4k-k23", CONTEXT)
    assert isinstance(found, NoRoute) and "No SAE" in found.message
    assert found.suggestions[0].params == {"sae": "smollm2-l6-topk-4k-k32"}
    assert found.suggestions[-1].page == "token", "and the text itself, in case it was meant as one"
    with_latent = route("smollm2-l6-topk-4k-k23/5", CONTEXT)
    assert isinstance(with_latent, NoRoute)
    assert {"sae": "smollm2-l6-topk-4k-k32", "latent": "5"} in [s.params for s in with_latent.suggestions]


def test_empty_and_overlong_queries():
    assert route("", CONTEXT) is None and route(" \t\n", CONTEXT) is None
    assert isinstance(route("x" * (MAX_QUERY + 1), CONTEXT), NoRoute)


def test_label_prefix_searches_latent_labels():
    assert route("label: Kosher", CONTEXT) == LabelSearch("Kosher")
    assert route("LABEL:snake (100", CONTEXT) == LabelSearch("snake (100")
    assert isinstance(route("label:  ", CONTEXT), NoRoute)


def test_a_bare_id_without_a_default_sae_is_searched_as_text():
    found = route("12", SearchContext(widths={}, default_sae=None, task_classes={}))
    assert isinstance(found, Route) and found.page == "token"


@given(st.text(max_size=60))
def test_any_query_routes_to_a_page_or_says_why_not(query):
    found = route(query, CONTEXT)
    if found is None:
        assert not query.split()
    elif isinstance(found, NoRoute):
        assert found.message and all(isinstance(s, Route) for s in found.suggestions)
    elif isinstance(found, LabelSearch):
        assert found.text and query.strip().lower().startswith("label")
    else:
        assert found.page in {"latent", "browse", "letter", "token"} and found.understood
