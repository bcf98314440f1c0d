"""The views that compare SAEs, on a small sweep built by the real precompute job (tests/helpers.py:
SWEEP, with synthetic absorption rows of known value): the compare page, the latent page's matches in
other SAEs, and token search's one row per SAE."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests import helpers
from tests.app.test_absorption_pages import chart_specs, link_labels
from tests.app.test_pages import all_text, run_page

SAES = [s.key for s in helpers.SWEEP]
BY_KEY = {s.key: s for s in helpers.SWEEP}
DB_ORDER = ["early-w8", "w8", "w16", "w32"]  # by layer, then width
ABSORPTION_CHARTS = ["mean_absorption_fraction", "full_absorption_rate", "paper_absorption_rate",
                     "mean_main_precision", "mean_main_recall", "mean_num_split_latents"]
INTERVALS = {"mean_absorption_fraction": "frac", "full_absorption_rate": "full", "paper_absorption_rate": "paper"}


def decoded(value) -> np.ndarray:
    """A figure-spec array: a plain list, or plotly's typed-array encoding {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return array.reshape([int(n) for n in str(value.get("shape", len(array))).split(",")])
    return np.array(value, dtype=float)


def points(spec: dict) -> dict[str, tuple[float, float, float, float]]:
    """SAE key -> (x, y, error above, error below), from the traces of one subplot of a figure spec."""
    out = {}
    for trace in spec["data"]:
        error = trace.get("error_y") or {}
        for i, key in enumerate(trace["customdata"]):
            out[key] = (trace["x"][i], trace["y"][i], (error.get("array") or [0] * (i + 1))[i],
                        (error.get("arrayminus") or [0] * (i + 1))[i])
    return out


def subplot(spec: dict, axis: str) -> dict:
    return {"data": [t for t in spec["data"] if t.get("xaxis", "x") == axis]}


# --- compare page ---------------------------------------------------------------------------------
def test_compare_shows_every_sae_with_known_absorption_numbers(sweep_env):
    at = run_page("compare")
    assert not at.exception
    assert at.title[0].value == "Compare SAEs"
    table = at.dataframe[0].value
    assert table["SAE"].tolist() == DB_ORDER
    assert table["width"].tolist() == [BY_KEY[k].d_sae for k in DB_ORDER]
    assert table["layer"].tolist() == [0, 1, 1, 1]
    w16 = table.set_index("SAE").loc["w16"]
    assert w16["mean absorption fraction"] == "0.200 [0.150, 0.260]"
    assert w16["full-absorption rate"] == "0.080 [0.060, 0.110]"
    assert w16["paper absorption rate"] == "0.030 [0.020, 0.050]"
    assert w16["architecture"] == "topk (saved as standard)"
    assert w16["overview"] == "./overview?sae=w16"
    assert table.set_index("SAE").loc["w32", "mean absorption fraction"] == "—"
    sae_links = [label for label in link_labels(at) if label.endswith(" →") and not label.startswith("Compare on")]
    assert [f"{key} →" for key in DB_ORDER] == sae_links  # "Compare on <task> →": the other tasks (test_task_pages)
    overview_links = [p.proto for p in at.get("page_link") if p.proto.label in sae_links]
    # The overview is the default page: its links carry no page name.
    assert [(p.page, p.query_string) for p in overview_links] == [("", f"sae={key}") for key in DB_ORDER]
    assert any("`w32`" in i.value and "dashboard metrics only" in i.value for i in at.info)
    expanders = [e.proto.label for e in at.expander]
    assert "What these metrics are, and the trend to look for" in expanders
    assert "absorption *rises as L0\nfalls*" in all_text(at) and "*as width grows*" in all_text(at)
    # the small-model caveat names the 135M SmolLM2; this database's models are the tests' own: none is shown
    assert not any("16k latents" in c.value for c in at.caption)


def test_compare_charts_plot_each_metric_against_l0_and_width_with_intervals(sweep_env):
    at = run_page("compare")
    charts = chart_specs(at)
    assert {f"compare_{name}" for name in ABSORPTION_CHARTS + ["explained_variance"]} | {"compare_heatmap"} \
        == set(charts)
    frac = charts["compare_mean_absorption_fraction"]
    by_l0, by_width = points(subplot(frac, "x")), points(subplot(frac, "x2"))
    assert set(by_l0) == set(by_width) == {"early-w8", "w8", "w16"}  # w32 has no absorption rows
    for key, numbers in helpers.SWEEP_ABSORPTION.items():
        value, low, high = numbers["frac"]
        x, y, above, below = by_width[key]
        assert x == BY_KEY[key].d_sae and y == pytest.approx(value)
        assert above == pytest.approx(high - value) and below == pytest.approx(value - low)
    assert frac["layout"]["xaxis2"]["type"] == "log"
    # Colour by layer, symbol by training architecture, the SAE key in the hover.
    traces = {t["name"]: t for t in frac["data"] if t.get("xaxis", "x") == "x"}
    assert set(traces) == {"layer 0 · standard", "layer 1 · standard", "layer 1 · topk"}
    assert traces["layer 1 · standard"]["marker"]["color"] == traces["layer 1 · topk"]["marker"]["color"]
    assert traces["layer 0 · standard"]["marker"]["color"] != traces["layer 1 · standard"]["marker"]["color"]
    assert traces["layer 1 · standard"]["marker"]["symbol"] != traces["layer 1 · topk"]["marker"]["symbol"]
    assert all(t["hovertext"][i].startswith(f"<b>{key}</b>")
               for t in frac["data"] for i, key in enumerate(t["customdata"]))
    split = points(subplot(charts["compare_mean_num_split_latents"], "x"))
    assert split["w16"][1] == pytest.approx(helpers.SWEEP_ABSORPTION["w16"]["split"])
    recall = points(subplot(charts["compare_mean_main_recall"], "x"))
    assert recall["early-w8"][1] == pytest.approx(helpers.SWEEP_ABSORPTION["early-w8"]["r"])
    ev = points(subplot(charts["compare_explained_variance"], "x"))
    assert set(ev) == set(SAES)  # a dashboard metric: every SAE, absorption or not


def test_compare_heatmap_has_letters_by_saes_and_marks_excluded_letters(sweep_env):
    at = run_page("compare")
    heatmap = chart_specs(at)["compare_heatmap"]["data"]
    values, excluded = heatmap[0], heatmap[1]
    assert values["x"] == ["early-w8", "w8", "w16"] and values["y"] == ["S", "T", "X"]
    z = decoded(values["z"])
    assert z[1, 2] == pytest.approx(helpers.SWEEP_SAE_LETTERS["w16"]["t"][2])  # letter T, w16
    assert z[0, 1] == pytest.approx(helpers.SWEEP_SAE_LETTERS["w8"]["s"][2])  # letter S, w8
    assert np.isnan(z[2]).all()  # X: probe F1 0.4, excluded from the colour scale
    assert values["text"][0][1].rstrip("†") == f"{helpers.SWEEP_SAE_LETTERS['w8']['s'][2] * 100:.0f}"  # percent, no sign
    assert excluded["text"][2] == ["ex"] * 3 and excluded["text"][0] == [""] * 3
    cells = heatmap[2]
    assert ["w8", "x"] in cells["customdata"]
    assert any("excluded: probe F1" in h for h in cells["hovertext"])


def test_compare_a_subset_from_the_url(sweep_env):
    at = run_page("compare", saes="w16,w8")
    assert not at.exception
    assert at.dataframe[0].value["SAE"].tolist() == ["w8", "w16"]  # database order
    assert at.multiselect(key="compare_saes").value == ["w8", "w16"]
    frac = chart_specs(at)["compare_mean_absorption_fraction"]
    assert set(points(frac)) == {"w8", "w16"}
    assert not at.info  # both have absorption rows


def test_compare_a_single_sae_without_absorption_rows(sweep_env):
    at = run_page("compare", saes="w32")
    assert not at.exception
    assert at.dataframe[0].value["SAE"].tolist() == ["w32"]
    assert any("None of the chosen SAEs has absorption measurements" in i.value for i in at.info)
    assert set(chart_specs(at)) == {"compare_explained_variance"}


@pytest.mark.parametrize("bad, message", [
    ("w8,nope", "Unknown SAE `nope` in `saes`"),
    ("x1,x2", "Unknown SAEs `x1`, `x2`"),
    ("w8,,w16", "empty entry"),
    ("' OR 1=1 --", "Unknown SAE"),
    ("w" * 3000, "longer than"),
])
def test_compare_bad_saes_parameter_shows_a_message(sweep_env, bad, message):
    at = run_page("compare", saes=bad)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_compare_multiselect_keeps_the_choice_in_the_url(sweep_env):
    at = run_page("compare")
    at.multiselect(key="compare_saes").set_value(["w8", "w32"])
    next(b for b in at.button if b.label == "Apply").click().run()  # the form's Apply: several changes, one rerun
    assert not at.exception
    assert at.query_params["saes"] in ("w8,w32", ["w8,w32"])
    assert at.dataframe[0].value["SAE"].tolist() == ["w8", "w32"]


def test_clicking_a_chart_point_opens_that_saes_feature_page(sweep_env):
    at = run_page("compare")
    at.session_state["compare_mean_absorption_fraction"] = {
        "selection": {"points": [{"customdata": "w16", "x": 16, "y": 0.2}], "point_indices": [0], "box": [],
                      "lasso": []}}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Letter S", "an absorption chart opens the SAE's Feature page (its default class)"
    assert at.query_params["sae"] in ("w16", ["w16"])


def test_clicking_a_heatmap_cell_opens_that_letter(sweep_env):
    at = run_page("compare")
    at.session_state["compare_heatmap"] = {
        "selection": {"points": [{"customdata": ["w8", "t"], "x": "w8", "y": "T"}], "point_indices": [0],
                      "box": [], "lasso": []}}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Letter T"
    assert at.query_params["sae"] in ("w8", ["w8"])


# --- latent page: the same direction in other SAEs --------------------------------------------------
def matches_table(at):
    return next(d.value for d in at.dataframe if "first-letter role" in d.value.columns)


def test_latent_page_lists_the_match_in_each_other_sae_at_the_hook(sweep_env):
    at = run_page("latent", sae="w16", latent="11")
    assert not at.exception
    assert "Same direction in other SAEs" in [s.value for s in at.subheader]
    table = matches_table(at).set_index("SAE")
    assert sorted(table.index) == ["w32", "w8"]  # early-w8 is at another hook
    assert table.loc["w8", "latent"] == "./latent?sae=w8&latent=3"
    assert table.loc["w32", "latent"] == "./latent?sae=w32&latent=20"
    assert table["cosine"].tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    assert table.loc["w32", "width"] == 32 and table.loc["w32", "architecture"] == "batchtopk (saved as standard)"
    assert table.loc["w8", "first-letter role"] == "split latent for S; absorber of T on 1 word"
    assert "no absorption measurements" in table.loc["w32", "first-letter role"]
    assert table.loc["w8", "density"].endswith("%")
    labels = link_labels(at)
    assert "w8: latent 3 (cos 1.00) →" in labels and "w32: latent 20 (cos 1.00) →" in labels


def test_matched_latent_role_shows_main_and_split_letters(sweep_env):
    at = run_page("latent", sae="w8", latent="3")
    table = matches_table(at).set_index("SAE")
    assert table.loc["w16", "latent"] == "./latent?sae=w16&latent=11"
    assert table.loc["w16", "first-letter role"] == "main latent for T"


def test_match_link_opens_the_other_latent(sweep_env):
    at = run_page("latent", sae="w16", latent="11")
    link = next(p.proto for p in at.get("page_link") if p.proto.label.startswith("w8: latent 3"))
    assert (link.page, link.query_string) == ("latent", "sae=w8&latent=3")


def test_latent_page_says_when_no_other_sae_shares_the_hook(sweep_env):
    at = run_page("latent", sae="early-w8", latent="3")
    assert not at.exception
    assert any("No other SAE at `blocks.0.hook_resid_post`" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "first-letter role" in d.value.columns]


# --- token search: one row per SAE ------------------------------------------------------------------
def test_token_search_shows_one_row_per_sae_that_measured_the_word(sweep_env):
    at = run_page("token", sae="w8", token="t7")
    assert not at.exception
    tables = [d.value for d in at.dataframe if "absorbed" in d.value.columns]  # the per-SAE tables (folded)
    assert len(tables) == 2  # first_letter: one table across both hooks; then the word's other task (test_task_pages)
    table = tables[0].set_index("SAE")
    assert table.index.tolist() == ["early-w8", "w8", "w16"]
    assert table["layer"].tolist() == [0, 1, 1] and table["width"].tolist() == [8, 8, 16]
    assert table.loc["w8", "absorbed"] == "fully absorbed"
    assert table.loc["w8", "absorber"] == "./latent?sae=w8&latent=3"
    assert table.loc["w8", "absorber cos"] == pytest.approx(helpers.sweep_letter_cos(3, "t"))
    assert table.loc["early-w8", "absorbed"] == "partly absorbed (30%)"
    assert table.loc["early-w8", "absorber"].endswith("sae=early-w8&latent=3")
    assert table.loc["w16", "absorbed"] == "not absorbed"
    assert table.loc["w16", "absorber"] is None or table.loc["w16", "absorber"] != table.loc["w16", "absorber"]
    assert table.loc["w16", "architecture"] == "topk"
    assert any("Not in the table: `w32` (no absorption measurements)" in c.value for c in at.caption)
    assert len(at.code) == 3  # one prompt per hook and task, in the tasks' folded details
    assert [label for label in link_labels(at) if label.startswith("Letter T in")] == \
        ["Letter T in early-w8 →", "Letter T in w8 →", "Letter T in w16 →"]


def test_token_search_training_word_has_no_table(sweep_env):
    at = run_page("token", sae="w8", token="t8")
    assert not at.exception
    assert any("probe-training word" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "absorbed" in d.value.columns]
    matrix = at.dataframe[0].value
    assert set(matrix.drop(columns="SAE").stack()) == {"— not measured"}


# --- probe runs: every number names the run it was measured against ----------------------------------
@pytest.fixture(scope="module")
def two_runs_db(tmp_path_factory):
    """The sweep with w16 measured against a second probe run at its hook (another absorption config)."""
    return helpers.build_sweep_database(tmp_path_factory.mktemp("tworuns"), second_run=("w16",), second_task=True)


def test_pages_name_the_probe_run_and_offer_the_others(two_runs_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(two_runs_db))
    w8_run, w16_run = helpers.sweep_probe_run_id(helpers.HOOK), helpers.sweep_probe_run_id(helpers.HOOK, "b")
    at = run_page("letter", sae="w8", letter="t")
    assert not at.exception
    assert f"Measured against probe run `{w8_run}`" in all_text(at)
    expander = [e for e in at.expander if "other probe run" in e.label]
    assert len(expander) == 1 and w16_run in all_text(at) and "letter=t" in all_text(at)

    at = run_page("compare")
    assert not at.exception
    table = at.dataframe[0].value.set_index("SAE")
    assert table.loc["w8", "probe run"] == w8_run and table.loc["w16", "probe run"] == w16_run
    assert any("different probe runs" in w.value for w in at.warning)

    at = run_page("token", token="t7")
    assert not at.exception
    rows = next(d.value for d in at.dataframe if "probe run" in d.value.columns).set_index("SAE")
    assert rows.loc["w8", "probe run"] == w8_run and rows.loc["w16", "probe run"] == w16_run


def test_one_probe_run_per_hook_shows_no_warning(sweep_env):
    at = run_page("compare")
    assert not any("different probe runs" in w.value for w in at.warning)
    at = run_page("letter", sae="w8", letter="t")
    assert not [e for e in at.expander if "other probe run" in e.label]


def test_compare_shows_the_method_band_and_saebench_s_rule_beside_each_interval(sweep_env):
    """w16's SAEBench-rule split latents differ from the guarded rule's (tests/helpers.SWEEP_OTHER_RULE): its method
    band covers both rules' intervals and the SAEBench column holds the other rule's number; w8's rules agree, so its
    band is its own interval."""
    at = run_page("compare")
    assert not at.exception
    table = at.dataframe[0].value.set_index("SAE")
    assert table.loc["w16", "mean absorption fraction"] == "0.200 [0.150, 0.260]"
    assert table.loc["w16", "method band"] == "[0.150, 0.370]"
    assert table.loc["w16", "SAEBench's rule"] == pytest.approx(0.32)
    assert table.loc["w8", "method band"] == "[0.050, 0.150]"
    assert table.loc["w8", "SAEBench's rule"] == pytest.approx(0.10)
    assert table.loc["w32", "method band"] == "—"
    assert any("method band" in c.value for c in at.caption)


def test_the_feature_page_names_the_other_rule_s_number_and_split_latents(sweep_env):
    changed = run_page("letter", sae="w16", letter="s")
    assert not changed.exception
    line = next(c.value for c in changed.caption if c.value.startswith("Split latents by"))
    assert "guarded L1 ranking: 0.180" in line and "L1-weight ranking (SAEBench): 0.400" in line
    assert "SAEBench's rule would report 0.400" in line and "split latents for S: 1." in line
    same = run_page("letter", sae="w8", letter="s")
    assert any(c.value.startswith("Both split-latent rules give 0.080") for c in same.caption)


def test_the_charts_legend_is_drawn_once(sweep_env):
    at = run_page("compare")
    charts = [spec for key, spec in chart_specs(at).items() if key.startswith("compare_") and "heatmap" not in key]
    legends = [any(trace.get("showlegend") for trace in spec["data"]) for spec in charts]
    assert len(legends) >= 3 and legends[0] and not any(legends[1:])
