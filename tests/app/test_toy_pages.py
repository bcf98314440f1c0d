"""The toy run in the shipped demo database (precompute/toy/hierarchy.py): the Feature and latent pages of the toy
SAE show the ground-truth panel, with the metrics' precision and recall, and say the model check does not apply;
a normal SAE's pages show nothing of it."""

from __future__ import annotations

import pytest

from backend.database import DEFAULT_DB_PATH
from tests.app.test_pages import all_text, run_page
from tests.app.urls import assert_clean

TOY = "toy-hierarchy-relu-32"
NORMAL = "smollm2-l6-topk-4k-k32"


@pytest.fixture()
def demo_env(monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(DEFAULT_DB_PATH))


def subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


def test_feature_page_of_the_toy_shows_the_truth_and_the_metrics_precision_recall(demo_env):
    at = run_page("letter", sae=TOY, task="toy_hierarchy", **{"class": "animal"})
    assert_clean(at, "/letter?task=toy_hierarchy&class=animal")
    assert "Ground truth (toy run)" in subheaders(at)
    assert {m.label: m.value for m in at.metric}["model accuracy"] == "n/a"
    tables = [d.value for d in at.dataframe]
    metrics = next(t for t in tables if "precision [95% CI]" in t.columns)
    assert list(metrics["class"]) == ["animal", "all"]
    features = next(t for t in tables if "true feature" in t.columns)
    assert {"animal", "cat", "dog", "fox", "owl", "bee"} <= set(features["true feature"])
    # every animal child's latent swallowed the parent, and links to its latent page
    children = features[features["role"] == "child"]
    assert children["absorbs the parent"].all()
    assert children["latent"].str.contains(f"latent\\?sae={TOY}&latent=").all()


def test_latent_page_of_an_absorbing_toy_latent_names_the_parent_it_swallowed(demo_env):
    at = run_page("latent", sae=TOY, latent="13", task="toy_hierarchy")
    assert_clean(at, "/latent?latent=13")
    text = all_text(at)
    assert "Ground truth (toy run)" in subheaders(at)
    assert "absorbing latent" in text and "`cat`" in text and "`animal`" in text


def test_a_normal_saes_pages_show_no_ground_truth(demo_env):
    for at in (run_page("letter", sae=NORMAL, letter="s"), run_page("latent", sae=NORMAL, latent="5")):
        assert "Ground truth (toy run)" not in subheaders(at)
        assert "toy model" not in all_text(at)
    at = run_page("letter", sae=NORMAL, letter="s")
    assert {m.label: m.value for m in at.metric}["model accuracy"] != "n/a"


def test_compare_on_the_toy_task_shows_the_metrics_precision_recall_against_the_truth(demo_env):
    at = run_page("compare", task="toy_hierarchy")
    assert_clean(at, "/compare?task=toy_hierarchy")
    assert "Against ground truth (toy run)" in subheaders(at)
    pooled = next(d.value for d in at.dataframe if "precision [95% CI]" in d.value.columns)
    assert list(pooled["class"]) == ["all"] and pooled["words judged"].iloc[0] > 100
    # only the toy model's SAE: SmolLM2's SAEs can have no numbers on the toy's vocabulary
    assert list(at.multiselect[0].value) == [TOY]
    assert "no absorption measurements" not in all_text(at).lower()
    assert any("Left out" in c.value and NORMAL in c.value for c in at.caption)
    # first_letter compares SmolLM2's SAEs only: no toy truth there, and the toy SAE is left out, not "unmeasured"
    letters = run_page("compare")
    assert "Against ground truth (toy run)" not in subheaders(letters)
    assert TOY not in list(letters.multiselect[0].value) and NORMAL in list(letters.multiselect[0].value)
    assert TOY not in " ".join(i.value for i in letters.info)


def test_a_latent_page_without_a_task_links_its_parent_under_the_toy_task(demo_env):
    """The page's task is first_letter when the URL names none; the parent is a class of toy_hierarchy only."""
    at = run_page("latent", sae=TOY, latent="13")
    assert not at.exception
    markdown = " ".join(m.value for m in at.markdown)
    assert f"./letter?sae={TOY}&task=toy_hierarchy&class=animal" in markdown
    assert "letter=animal" not in markdown


def test_only_child_latents_carrying_their_parent_count_as_absorbing():
    from backend import truth
    from backend.database import ExplorerDB

    db = ExplorerDB(DEFAULT_DB_PATH)
    try:
        latents = db.truth_latents(TOY)
    finally:
        db.close()
    absorbing = truth.absorbing(latents)
    # every child of the 4 parents has one absorbing latent (metal's are nearer their parent than their child)
    assert len(absorbing) == 20 and absorbing["child"].nunique() == 20
    assert absorbing.groupby("parent")["child"].nunique().to_dict() == {p: 5 for p in ("animal", "metal", "plant", "tool")}
    assert (absorbing[["child_cos", "parent_cos"]] >= truth.ABSORBING_COS).all().all()
    # latent 2 is an `animal` latent with a trace of `owl` (0.85 / 0.47): a parent latent, not an absorber
    two = latents.set_index("latent").loc[2]
    assert two["feature"] == "animal" and 2 not in set(absorbing["latent"])
    assert "absorbing" not in truth.latent_summary(two.to_dict())


def test_each_toy_class_s_feature_page_flags_a_main_latent_outside_its_split_latents(demo_env):
    """The flag follows the database: shown exactly for the classes whose main latent is not a split latent (the toy
    has both kinds)."""
    import duckdb

    with duckdb.connect(str(DEFAULT_DB_PATH), read_only=True) as con:
        rows = con.execute("SELECT letter, main_in_split, main_latent FROM sae_letters WHERE sae_key = ? "
                           "AND task = 'toy_hierarchy' ORDER BY letter", [TOY]).fetchall()
    assert {inside for _, inside, _ in rows} == {True, False}
    for name, inside, main in rows:
        at = run_page("letter", sae=TOY, task="toy_hierarchy", **{"class": name})
        flags = [w.value for w in at.warning if w.value.startswith(f"The main latent {main} is not one of")]
        assert len(flags) == (0 if inside else 1), name
