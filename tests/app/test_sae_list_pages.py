"""The overview and compare pages over many SAEs: filters, grouping and pages from the URL, on the small sweep
(tests/helpers.py: SWEEP, layers 0 and 1, widths 8-32, known absorption numbers). Pages are shrunk to 2 SAEs
so that 4 SAEs make two of them."""

from __future__ import annotations

import pytest

from backend import sae_filter
from backend.database import ExplorerDB
from tests import helpers
from tests.app.test_absorption_pages import chart_specs, link_labels
from tests.app.test_compare_pages import points, subplot
from tests.app.test_pages import all_text, run_page
from tests.app.urls import links, page_links

MEASURED = {k: v["frac"][0] for k, v in helpers.SWEEP_ABSORPTION.items()}


def card_titles(at) -> list[str]:
    """The overview's SAE cards (one subheader each; the absorption section adds its own)."""
    keys = {s.key for s in helpers.SWEEP}
    return [s.value for s in at.subheader if s.value in keys]


def links_to(at, label: str) -> dict:
    found = [params for (page, params), text in zip(page_links(at), link_labels(at)) if text == label]
    assert found, f"no link {label!r} in {link_labels(at)}"
    return found[0]


@pytest.fixture()
def two_per_page(monkeypatch):
    monkeypatch.setattr(sae_filter, "PAGE_SIZE", 2)


def test_overview_filters_by_layer_and_width_from_the_url(sweep_env):
    at = run_page("overview", layer="1", width="8")
    assert not at.exception
    assert card_titles(at) == ["w8"]
    assert at.dataframe[0].value["SAE"].tolist() == ["w8"]
    db = ExplorerDB(sweep_env)
    l0 = db.saes().set_index("sae_key")["l0"]
    db.close()
    low, high = sorted([l0["w16"], l0["w32"]])
    at = run_page("overview", l0=f"{low:.4f}-{high + 0.001:.4f}")
    assert set(card_titles(at)) == {key for key, value in l0.items() if low - 1e-4 <= value <= high + 0.001}


def test_overview_groups_by_layer_with_a_link_that_narrows_to_each(sweep_env):
    at = run_page("overview", group="layer")
    assert not at.exception
    groups = next(d.value for d in at.dataframe if "SAEs" in d.value.columns).set_index("layer")
    assert groups["SAEs"].to_dict() == {0: 1, 1: 3}
    assert groups.loc[1, "mean absorption fraction"] == pytest.approx((MEASURED["w8"] + MEASURED["w16"]) / 2, abs=1e-6)
    assert groups.loc[1, "measured"] == 2
    narrowed = links_to(at, "only layer 1 →")
    assert narrowed == {"layer": "1", "group": "layer"}
    assert card_titles(run_page("overview", **narrowed)) == ["w8", "w16", "w32"]


def test_overview_pages_through_the_saes_and_keeps_the_filter(sweep_env, two_per_page):
    at = run_page("overview")
    first = card_titles(at)
    assert len(first) == 2
    assert "SAEs 1–2 of 4 · page 1 of 2" in all_text(at)
    following = links_to(at, "next SAEs →")
    assert following == {"page": "1"}
    second = card_titles(run_page("overview", **following))
    assert len(second) == 2 and not set(first) & set(second)
    past = run_page("overview", page="7")
    assert card_titles(past) == second and "only 2 pages" in all_text(past)
    assert links_to(run_page("overview", layer="1", page="1"), "← previous SAEs") == {"layer": "1", "page": "0"}


def test_overview_heatmap_and_letter_links_cover_only_the_page(sweep_env, two_per_page):
    at = run_page("overview", page="1")
    shown = set(card_titles(at))
    # letter A: the per-letter link table (the absorption table links every listed SAE to its letter S)
    letter_saes = {params["sae"] for page, params in links(at) if page == "letter" and params["letter"] == "a"}
    assert letter_saes and letter_saes <= shown


def test_a_filter_value_the_database_lacks_gets_a_message_with_the_choices(sweep_env):
    at = run_page("overview", layer="5")
    assert not at.exception
    assert at.error[0].value == "No SAE in this database has layer 5; it has 0, 1."
    at = run_page("compare", l0="30-10")
    assert "is empty" in at.error[0].value


def test_compare_filters_and_plots_layer_as_an_axis(sweep_env):
    at = run_page("compare", layer="1")
    assert not at.exception
    assert at.dataframe[0].value["SAE"].tolist() == ["w8", "w16", "w32"]
    spec = chart_specs(at)["compare_mean_absorption_fraction"]
    by_layer = points(subplot(spec, "x3"))
    assert set(by_layer) == {"w8", "w16"}  # measured SAEs of layer 1 only, one point each
    assert all(x == 1 for x, *_ in by_layer.values())
    assert spec["layout"]["xaxis3"]["title"]["text"] == "layer"
    everything = points(subplot(chart_specs(run_page("compare"))["compare_mean_absorption_fraction"], "x3"))
    assert {key: x for key, (x, *_) in everything.items()} == {"early-w8": 0, "w8": 1, "w16": 1}


def test_compare_groups_by_width_and_keeps_the_chosen_saes_in_its_links(sweep_env):
    at = run_page("compare", saes="w8,w16,early-w8", group="width")
    assert not at.exception
    groups = next(d.value for d in at.dataframe if "SAEs" in d.value.columns).set_index("width")
    assert groups["SAEs"].to_dict() == {8: 2, 16: 1}
    assert groups.loc[8, "mean absorption fraction"] == pytest.approx((MEASURED["w8"] + MEASURED["early-w8"]) / 2,
                                                                      abs=1e-6)
    assert links_to(at, "only width 8 →") == {"saes": "w8,w16,early-w8", "group": "width", "width": "8"}
    narrowed = run_page("compare", **links_to(at, "only width 8 →"))
    assert sorted(narrowed.dataframe[1].value["SAE"]) == ["early-w8", "w8"]


def test_compare_pages_its_heatmap_columns(sweep_env, two_per_page):
    at = run_page("compare")
    spec = chart_specs(at)["compare_heatmap"]
    columns = {c for trace in spec["data"] for c in (trace.get("x") or []) if isinstance(c, str)}
    assert columns and columns <= {"early-w8", "w8"}  # DB order: the first page is early-w8, w8
    assert links_to(at, "next SAEs →") == {"page": "1"}
