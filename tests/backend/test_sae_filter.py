"""The SAE list's filter, grouping and pages, read from URL parameters (backend/sae_filter.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from backend.params import ParamError
from backend.sae_filter import (
    SAEFilter,
    group_filter,
    group_summary,
    parse_filter,
    parse_group,
    parse_l0_range,
    parse_list_page,
    task_default_saes,
)

SAES = pd.DataFrame({
    "sae_key": ["a", "b", "c", "d", "e"],
    "model_name": ["m1", "m1", "m1", "m1", "m2"],
    "hook_name": ["blocks.2.r", "blocks.6.r", "blocks.6.r", "blocks.6.r", "blocks.6.r"],
    "layer": [2, 6, 6, 6, 6],
    "d_sae": [1024, 1024, 4096, 4096, 16384],
    "training_architecture": ["topk", "topk", "topk", "jumprelu", "topk"],
    "l0": [32.0, 16.0, 32.0, 114.0, 64.0],
    "explained_variance": [0.9, 0.8, 0.85, 0.95, 0.7],
})


def keys(flt: SAEFilter) -> list[str]:
    return flt.apply(SAES)["sae_key"].tolist()


def test_each_filter_keeps_only_the_matching_saes():
    assert keys(parse_filter({"layer": "6"}, SAES)) == ["b", "c", "d", "e"]
    assert keys(parse_filter({"width": "4096"}, SAES)) == ["c", "d"]
    assert keys(parse_filter({"arch": "jumprelu"}, SAES)) == ["d"]
    assert keys(parse_filter({"model": "m2"}, SAES)) == ["e"]
    assert keys(parse_filter({"hook": "blocks.2.r"}, SAES)) == ["a"]
    assert keys(parse_filter({"l0": "20-64"}, SAES)) == ["a", "c", "e"]  # inclusive at both ends
    assert keys(parse_filter({"layer": "6", "width": "4096", "arch": "topk"}, SAES)) == ["c"]
    assert keys(parse_filter({}, SAES)) == ["a", "b", "c", "d", "e"]


def test_the_filter_round_trips_through_its_link_parameters():
    flt = parse_filter({"layer": " 6 ", "width": "4096", "l0": "16..64", "model": "m1"}, SAES)
    assert flt.params() == {"model": "m1", "layer": "6", "width": "4096", "l0": "16-64"}
    assert parse_filter(flt.params(), SAES) == flt
    assert flt.describe() == "model m1, layer 6, width 4,096, L0 16–64"
    assert not parse_filter({"layer": ""}, SAES).active


@pytest.mark.parametrize("text, expected", [("16-64", (16, 64)), ("16-", (16, None)), ("-64", (None, 64)),
                                            ("1.5..2.5", (1.5, 2.5)), (" 7 - 7 ", (7, 7)), ("", (None, None))])
def test_l0_ranges(text, expected):
    assert parse_l0_range(text) == expected


@pytest.mark.parametrize("params, message", [
    ({"layer": "7"}, "has 2, 6"), ({"layer": "-1"}, "whole number"), ({"width": "1e3"}, "whole number"),
    ({"arch": "TOPK"}, "jumprelu, topk"), ({"model": "x" * 300}, "longer than"), ({"hook": "a\x00"}, "control"),
    ({"l0": "64-16"}, "empty"), ({"l0": "-"}, "range such as"), ({"l0": "nan-inf"}, "range such as"),
    ({"l0": "1-2-3"}, "range such as")])
def test_a_value_the_database_lacks_names_the_choices(params, message):
    with pytest.raises(ParamError, match=message):
        parse_filter(params, SAES)


def test_group_must_be_a_known_grouping():
    assert parse_group(None) == "none" and parse_group(" layer ") == "layer"
    with pytest.raises(ParamError, match="must be one of"):
        parse_group("layers")


def test_pages_cover_the_list_and_a_page_past_the_end_shows_the_last():
    first, last = parse_list_page(None, 45, page_size=20), parse_list_page("2", 45, page_size=20)
    assert (first.index, first.count, first.start, first.stop) == (0, 3, 0, 20)
    assert (last.start, last.stop, last.requested_past_end) == (40, 45, False)
    past = parse_list_page("9", 45, page_size=20)
    assert (past.index, past.requested_past_end) == (2, True)
    assert parse_list_page(None, 0, page_size=20).count == 1
    with pytest.raises(ParamError):
        parse_list_page("-1", 45)


def test_group_summary_counts_each_group_and_averages_its_absorption():
    absorption = pd.DataFrame({"sae_key": ["b", "c"], "mean_absorption_fraction": [0.1, 0.3]})
    summary = group_summary(SAES, "layer", absorption).set_index("layer")
    assert summary["SAEs"].to_dict() == {2: 1, 6: 4}
    assert summary.loc[6, "widths"] == "1,024–16,384" and summary.loc[2, "widths"] == "1,024"
    assert summary.loc[6, "mean absorption fraction"] == pytest.approx(0.2)
    assert summary.loc[6, "measured"] == 2 and summary.loc[2, "measured"] == 0
    assert group_filter("layer", 6) == {"layer": "6"} and group_filter("arch", "topk") == {"arch": "topk"}


def test_compare_defaults_to_the_saes_of_the_models_measured_on_the_task():
    measured_on_m2 = SAES.assign(has_absorption=[False, False, False, False, True])
    assert task_default_saes(measured_on_m2) == (["e"], ["a", "b", "c", "d"])
    # one measured SAE of m1 brings in every SAE of m1, measured or not
    measured_on_m1 = SAES.assign(has_absorption=[False, True, False, False, False])
    assert task_default_saes(measured_on_m1) == (["a", "b", "c", "d"], ["e"])
    # nothing measured: every SAE, so the page still shows their dashboard metrics
    assert task_default_saes(SAES.assign(has_absorption=False)) == (list("abcde"), [])
