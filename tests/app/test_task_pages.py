"""The views over several absorption tasks (schema v10), on the small sweep (tests/helpers.py: SWEEP with first_letter
and SWEEP_TASK, wordnet_category, of known planted values): the Feature page (url path `letter`) by task and class,
old `/letter?letter=` links, bad `task=`/`class=` values, the token page's verdict per task, compare per task, the
overview's task and the latent page's roles per task."""

from __future__ import annotations

import pandas as pd
import pytest

from tests import helpers
from tests.app.test_absorption_pages import chart_specs, link_labels
from tests.app.test_compare_pages import decoded, points, subplot
from tests.app.test_pages import all_text, run_page
from tests.app.urls import assert_clean, links, page_links

TASK = helpers.SWEEP_TASK


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# --- the Feature page --------------------------------------------------------------------------------
def test_feature_page_shows_a_class_of_the_second_task_with_its_planted_numbers(sweep_env):
    at = run_page("letter", sae="w16", task=TASK, **{"class": "animal"})
    assert_clean(at, "/letter?task=wordnet_category&class=animal")
    assert at.title[0].value == "Semantic category (WordNet): animal"
    shown = metrics(at)
    assert shown["probe F1"] == f"{helpers.SWEEP_CLASSES['animal']:.3f}"
    assert shown["mean absorption fraction"] == f"{helpers.SWEEP_SAE_CLASSES['w16']['animal'][2]:.3f}"
    assert shown["split latents"] == "2"
    classifiers = next(d.value for d in at.dataframe if "classifier" in d.value.columns)
    assert classifiers["direction"].iloc[1] == "latent 9"  # w16's planted animal main latent
    # the scatter reads the class's cosine by its position in tasks.classes (animal is the second)
    scatter = chart_specs(at)[f"letter_scatter_w16_{TASK}_animal"]
    ys = {latent: y for trace in scatter["data"] for latent, y in zip(trace["customdata"], decoded(trace["y"]))}
    assert len(ys) == 16
    assert all(ys[latent] == pytest.approx(helpers.sweep_class_cos(latent, 1)) for latent in ys)
    assert at.selectbox(key="letter_select").options == list(helpers.SWEEP_TASK_CLASSES)
    assert at.query_params["task"] in (TASK, [TASK]) and at.query_params["class"] in ("animal", ["animal"])
    assert "letter" not in at.query_params


def test_feature_page_lists_the_absorbed_word_with_its_absorber(sweep_env):
    at = run_page("letter", sae="w8", task=TASK, **{"class": "animal"})
    assert not at.exception
    words = next(d.value for d in at.dataframe if "absorber" in d.value.columns)
    assert words["word"].tolist() == ["t7"] and words["full"].tolist() == [True]
    assert words["absorber"].tolist() == [f"./latent?sae=w8&latent=6&task={TASK}"]
    assert words["probe cos"].tolist() == pytest.approx([helpers.sweep_class_cos(6, 1)])
    absorber_links = [(page, params) for page, params in links(at) if page == "latent" and params.get("latent") == "6"]
    assert absorber_links and all(params["task"] == TASK for _, params in absorber_links)


def test_the_fold_instability_warning_names_a_class_not_a_letter():
    from views import absorption_ui as ui

    folds = pd.DataFrame({"fold": range(5), "split_latents": [[3], [3], [4], [3], [4]], "main_latent": [3] * 5})
    text = ui.unstable_split_text({"split_stability": 0.6, "split_latents": [3]}, folds, "class")
    assert "this class's split latents" in text and "look like the class" in text and "letter" not in text
    assert "this letter's split latents" in ui.unstable_split_text({"split_stability": 0.6, "split_latents": [3]}, folds)


def test_old_letter_links_open_the_first_letter_task_unchanged(sweep_env):
    at = run_page("letter", sae="w8", letter="s")
    assert_clean(at, "/letter?letter=s")
    assert at.title[0].value == "Letter S"
    assert metrics(at)["mean absorption fraction"] == f"{helpers.SWEEP_SAE_LETTERS['w8']['s'][2]:.3f}"
    assert at.query_params["letter"] in ("s", ["s"]) and at.query_params["task"] in ("first_letter", ["first_letter"])
    assert "class" not in at.query_params
    upper = run_page("letter", sae="w8", letter="T")
    assert upper.title[0].value == "Letter T" and upper.query_params["letter"] in ("t", ["t"])


def test_letter_names_a_class_of_any_task_and_class_names_a_letter(sweep_env):
    at = run_page("letter", sae="w8", task=TASK, letter="food")
    assert not at.exception and at.title[0].value == "Semantic category (WordNet): food"
    assert at.query_params["class"] in ("food", ["food"]) and "letter" not in at.query_params
    at = run_page("letter", sae="w8", **{"class": "x"})
    assert not at.exception and at.title[0].value == "Letter X"


def test_a_task_without_a_class_opens_its_first_class(sweep_env):
    at = run_page("letter", sae="w8", task=TASK)
    assert not at.exception
    assert at.query_params["class"] in ("food", ["food"])  # SWEEP_TASK_CLASSES[0]
    assert at.title[0].value == "Semantic category (WordNet): food"


def test_choosing_a_task_then_a_class_updates_the_url(sweep_env):
    at = run_page("letter", sae="w8", letter="s")
    at.selectbox(key="letter_task_select").set_value(TASK).run()
    assert not at.exception
    assert at.query_params["task"] in (TASK, [TASK]) and "letter" not in at.query_params
    at.selectbox(key="letter_select").set_value("animal").run()
    assert not at.exception
    assert at.query_params["class"] in ("animal", ["animal"])
    assert at.title[0].value == "Semantic category (WordNet): animal"


@pytest.mark.parametrize("params, message", [
    ({"task": "nope"}, "Unknown task `nope`. Tasks in this database: first_letter, wordnet_category."),
    ({"task": "wordnet_pos"}, "Tasks in this database: first_letter, wordnet_category."),
    ({"task": TASK, "class": "s"}, "`class` must be a class of task wordnet_category (food, animal, artifact)"),
    ({"task": TASK, "letter": "plant"}, "`letter` must be a class of task wordnet_category"),
    ({"class": "animal"}, "`class` must be a single letter from a to z for task first_letter"),
    ({"task": "' OR 1=1 --"}, "Unknown task"),
])
def test_bad_task_or_class_gives_a_clear_message(sweep_env, params, message):
    at = run_page("letter", sae="w8", **params)
    assert_clean(at, f"/letter?{params}")
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_a_class_or_sae_without_measurements_says_so(sweep_env):
    at = run_page("letter", sae="w8", task=TASK, **{"class": "artifact"})
    assert not at.exception
    assert any("No absorption measurements for class artifact" in i.value for i in at.info)
    at = run_page("letter", sae="early-w8", task=TASK, **{"class": "animal"})
    assert not at.exception
    assert any("no absorption measurements on the task" in i.value and "First letter" in i.value for i in at.info)


# --- the token page: every task of a word ----------------------------------------------------------------
def test_token_page_lists_every_task_of_a_word_with_its_class_and_verdict_per_sae(sweep_env):
    at = run_page("token", sae="w8", token="t7")
    assert_clean(at, "/token?token=t7")
    assert at.subheader[0].value == "Token ' t7' · id 7 · letter T · Semantic category (WordNet): animal"
    matrix, letters, category = [d.value for d in at.dataframe if "SAE" in d.value.columns]
    assert "letter" in letters.columns and "class" in category.columns
    # the answer first: every SAE of the model down, each task of the word across
    matrix = matrix.set_index("SAE")
    assert matrix.loc["w8", "Semantic category (WordNet): animal"].startswith("fully absorbed by 6")
    assert matrix.loc["w16", "Semantic category (WordNet): animal"] == "not absorbed"
    assert matrix.loc["w32", "Semantic category (WordNet): animal"] == "— not measured"
    category = category.set_index("SAE")
    assert category.index.tolist() == ["w8", "w16"]  # early-w8 and w32 were not measured on it
    assert category["class"].tolist() == ["animal", "animal"]
    assert category.loc["w8", "absorbed"] == "fully absorbed"
    assert category.loc["w8", "absorber"] == f"./latent?sae=w8&latent=6&task={TASK}"
    assert category.loc["w8", "absorber cos"] == pytest.approx(helpers.sweep_class_cos(6, 1))
    assert category.loc["w16", "absorbed"] == "not absorbed"
    assert "#### Semantic category (WordNet): class animal" in all_text(at)
    assert any("`early-w8`, `w32` (no absorption measurements on this task)" in c.value for c in at.caption)
    feature_links = [params for page, params in links(at) if page == "letter" and params.get("task") == TASK]
    assert [(p["sae"], p["class"]) for p in feature_links] == [("w8", "animal"), ("w16", "animal")]
    assert "Semantic category (WordNet): animal in w8 →" in link_labels(at)
    letter_links = [params for page, params in links(at) if page == "letter" and params.get("task") == "first_letter"]
    assert [(p["sae"], p["letter"]) for p in letter_links] == [("early-w8", "t"), ("w8", "t"), ("w16", "t")]


def test_a_training_word_of_the_second_task_is_explained_in_it(sweep_env):
    at = run_page("token", sae="w8", token="t8")  # a probe-training word of letter t and of class food
    assert not at.exception
    assert "Semantic category (WordNet): food" in at.subheader[0].value
    assert sum("probe-training word" in i.value for i in at.info) == 2


# --- the latent page: roles per task -----------------------------------------------------------------------
def test_latent_page_lists_its_roles_in_every_task_and_profiles_the_chosen_task(sweep_env):
    at = run_page("latent", sae="w16", latent="11")  # main latent of t; split latent 2 of 2 for animal
    assert_clean(at, "/latent?sae=w16&latent=11")
    labels = link_labels(at)
    assert "Main latent for letter T (F1 0.450) →" in labels
    assert "Split latent 2 of 2 for class animal →" in labels
    targets = {label: params for label, (page, params) in zip(labels, page_links(at))}
    assert targets["Split latent 2 of 2 for class animal →"] == {"sae": "w16", "task": TASK, "class": "animal"}
    assert targets["Main latent for letter T (F1 0.450) →"] == {"sae": "w16", "task": "first_letter", "letter": "t"}
    profile = chart_specs(at)["latent_letter_profile"]["data"][0]
    assert profile["x"] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    matches = next(d.value for d in at.dataframe if "first-letter role" in d.value.columns).set_index("SAE")
    assert matches.loc["w8", "roles in other tasks"] == "—"  # w8's latent 3 has no category role

    at = run_page("latent", sae="w16", latent="11", task=TASK)
    assert not at.exception
    assert "Absorption (Semantic category (WordNet))" in [s.value for s in at.subheader]
    profile = chart_specs(at)["latent_letter_profile"]["data"][0]
    assert profile["x"] == list(helpers.SWEEP_TASK_CLASSES)
    assert decoded(profile["y"]).tolist() == pytest.approx([helpers.sweep_class_cos(11, i) for i in range(3)])
    assert profile["marker"]["color"][1] == "rgb(31,119,180)"  # animal: a split role, highlighted
    latent_links = [params for page, params in links(at) if page == "latent"]
    assert latent_links and all(params.get("task") == TASK for params in latent_links)


def test_a_matched_latents_roles_in_the_other_task(sweep_env):
    at = run_page("latent", sae="w8", latent="3")  # matches w16's latent 11: main for T, split for animal
    matches = next(d.value for d in at.dataframe if "first-letter role" in d.value.columns).set_index("SAE")
    assert matches.loc["w16", "first-letter role"] == "main latent for T"
    assert matches.loc["w16", "roles in other tasks"] == "Semantic category (WordNet): split latent for animal"


def test_latent_page_with_a_bad_task_says_so(sweep_env):
    at = run_page("latent", sae="w8", latent="3", task="colour")
    assert_clean(at, "/latent?task=colour")
    assert any("Unknown task `colour`" in e.value for e in at.error)


# --- compare and overview per task -------------------------------------------------------------------------
def test_compare_shows_the_chosen_tasks_numbers_and_every_tasks_summary(sweep_env):
    at = run_page("compare", task=TASK)
    assert_clean(at, "/compare?task=wordnet_category")
    table = at.dataframe[0].value.set_index("SAE")
    assert table.loc["w16", "mean absorption fraction"] == "0.430 [0.380, 0.470]"
    assert table.loc["w8", "full-absorption rate"] == "0.140 [0.100, 0.180]"
    assert table.loc["early-w8", "mean absorption fraction"] == "—"  # measured on first_letter only
    assert table.loc["w16", "overview"] == f"./overview?sae=w16&task={TASK}"
    assert any("on the task Semantic category (WordNet)" in i.value and "`early-w8`" in i.value for i in at.info)
    charts = chart_specs(at)
    recall = {key: y for key, (x, y, *_) in points(subplot(charts["compare_mean_main_recall"], "x")).items()}
    assert recall == pytest.approx({"w8": 0.61, "w16": 0.57})
    heatmap = charts["compare_heatmap"]["data"][0]
    assert list(heatmap["y"]) == ["animal", "food"] and list(heatmap["x"]) == ["w8", "w16"]
    summary = next(d.value for d in at.dataframe if "First letter" in d.value.columns).set_index("SAE")
    assert summary.loc["w8", "First letter"] == "0.100 [0.050, 0.150]"
    assert summary.loc["w8", "Semantic category (WordNet)"] == "0.310 [0.270, 0.360]"
    assert summary.loc["early-w8", "Semantic category (WordNet)"] == "—"
    assert summary.loc["w32", "First letter"] == "—"
    to_letters = [params for page, params in page_links_with_labels(at) if page == "Compare on First letter →"]
    assert to_letters == [{}]  # the default task: a bare compare URL


def page_links_with_labels(at):
    return [(label, params) for label, (_, params) in zip(link_labels(at), page_links(at))]


def test_compare_links_keep_the_task_and_the_default_task_keeps_links_bare(sweep_env):
    at = run_page("compare", task=TASK, layer="1")
    assert ("Compare on First letter →", {"layer": "1"}) in page_links_with_labels(at)
    assert all(params.get("task") == TASK for label, params in page_links_with_labels(at) if label.endswith(" →")
               and not label.startswith("Compare on"))
    bare = run_page("compare")
    assert ("Compare on Semantic category (WordNet) →", {"task": TASK}) in page_links_with_labels(bare)
    assert bare.selectbox(key="compare_task").value == "first_letter"
    bare.selectbox(key="compare_task").set_value(TASK).run()
    assert bare.query_params["task"] in (TASK, [TASK])


def test_compare_with_a_bad_task_says_so(sweep_env):
    at = run_page("compare", task="Wordnet_Pos")
    assert_clean(at, "/compare?task=Wordnet_Pos")
    assert any("Unknown task `Wordnet_Pos`. Tasks in this database: first_letter, wordnet_category." in e.value
               for e in at.error)


def test_overview_shows_the_chosen_tasks_absorption_with_class_links(sweep_env):
    at = run_page("overview", task=TASK)
    assert_clean(at, "/overview?task=wordnet_category")
    assert "Absorption: Semantic category (WordNet)" in [h.value for h in at.header]
    table = next(d.value for d in at.dataframe if "class page" in d.value.columns).set_index("SAE")
    assert table.index.tolist() == ["w8", "w16"]
    assert table.loc["w16", "mean absorption fraction"] == "0.430 [0.380, 0.470]"
    assert table.loc["w8", "class page"] == f"./letter?sae=w8&task={TASK}&class=food"
    assert table.loc["w8", "tasks measured"] == f"first_letter, {TASK}"
    heatmap = chart_specs(at)["overview_heatmap"]["data"][0]
    assert list(heatmap["x"]) == ["animal", "food"]
    class_links = {(params["sae"], params["class"]) for page, params in links(at)
                   if page == "letter" and params.get("task") == TASK}
    assert class_links >= {(key, c) for key in ("w8", "w16") for c in helpers.SWEEP_TASK_CLASSES}
    letters = run_page("overview")
    assert "First-letter absorption" in [h.value for h in letters.header]
    first = next(d.value for d in letters.dataframe if "letter page" in d.value.columns).set_index("SAE")
    assert first.loc["w8", "letter page"] == "./letter?sae=w8&task=first_letter&letter=s"
