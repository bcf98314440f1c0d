"""The accessors behind the views that compare SAEs, on a small sweep built by the real precompute job
(tests/helpers.py: SWEEP, with synthetic absorption rows of known value)."""

from __future__ import annotations

import pytest

from backend.database import ExplorerDB
from contract.schema import COS_SCALE
from tests import helpers


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    explorer = ExplorerDB(helpers.build_sweep_database(tmp_path_factory.mktemp("sweep"), second_task=True))
    yield explorer
    explorer.close()


def test_saes_carry_the_training_architecture(db):
    saes = db.saes().set_index("sae_key")
    for sae in helpers.SWEEP:
        assert saes.loc[sae.key, "training_architecture"] == sae.training_architecture
        assert saes.loc[sae.key, "architecture"] == "standard"  # what sae-lens saved
    assert db.sae("w32").training_architecture == "batchtopk"


def test_sae_comparison_has_every_sae_and_absorption_numbers_where_measured(db):
    frame = db.sae_comparison().set_index("sae_key")
    assert frame.index.tolist() == ["early-w8", "w8", "w16", "w32"]
    assert frame["has_absorption"].tolist() == [True, True, True, False]
    for key, numbers in helpers.SWEEP_ABSORPTION.items():
        row = frame.loc[key]
        for name, column in (("frac", "mean_absorption_fraction"), ("full", "full_absorption_rate"),
                             ("paper", "paper_absorption_rate")):
            assert (row[column], row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx(numbers[name])
        assert row["mean_num_split_latents"] == pytest.approx(numbers["split"])
        assert (row["mean_main_precision"], row["mean_main_recall"]) == pytest.approx((numbers["p"], numbers["r"]))
    assert frame.loc["w32", ["mean_absorption_fraction", "mean_main_recall"]].isna().all()
    assert frame["d_sae"].tolist() == [8, 8, 16, 32] and (frame["explained_variance"] > 0).all()


def test_latent_matches_find_the_planted_direction_in_each_other_sae_at_the_hook(db):
    matches = db.latent_matches("w8", 3)
    assert matches["other_sae_key"].tolist() == ["w16", "w32"]  # by width; early-w8 is at another hook
    assert matches["other_latent"].tolist() == [11, 20]
    assert matches["cosine"].tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    assert matches["d_sae"].tolist() == [16, 32]
    assert matches["training_architecture"].tolist() == ["topk", "batchtopk"]
    assert (matches["density"] > 0).all()
    assert db.latent_matches("early-w8", 3).empty


def test_matched_latent_roles(db):
    roles = db.latent_match_roles("w16", 11)  # matches: w8 latent 3 (split for s, absorber of t), w32 latent 20
    assert sorted(map(tuple, roles[["sae_key", "task", "role", "letter"]].values.tolist())) == \
        [("w8", "first_letter", "absorber", "t"), ("w8", "first_letter", "split", "s")]
    assert roles.loc[roles["role"] == "absorber", "n_words"].tolist() == [1]
    roles = db.latent_match_roles("w8", 3)  # matches: w16 latent 11 (main latent for t, split latent for animal)
    assert roles[["sae_key", "task", "role", "letter"]].values.tolist() == \
        [["w16", "first_letter", "main", "t"], ["w16", helpers.SWEEP_TASK, "split", "animal"]]


def test_token_absorption_carries_each_saes_size(db):
    frame = db.token_absorption("tiny", helpers.SWEEP_WORD_TOKEN)
    letters = frame[frame["task"] == "first_letter"]
    assert letters["sae_key"].tolist() == ["early-w8", "w8", "w16"]
    assert letters["d_sae"].tolist() == [8, 8, 16] and letters["layer"].tolist() == [0, 1, 1]
    assert letters["training_architecture"].tolist() == ["standard", "standard", "topk"]


# --- tasks (schema v10) -------------------------------------------------------------------------------------
def test_tasks_are_read_from_the_tasks_table_first_letter_first(db):
    tasks = db.tasks()
    assert [t.task for t in tasks] == ["first_letter", helpers.SWEEP_TASK]
    assert tasks[0].classes == tuple("abcdefghijklmnopqrstuvwxyz") and tasks[0].n_saes == 3
    assert tasks[1].classes == helpers.SWEEP_TASK_CLASSES and tasks[1].n_saes == 2
    assert tasks[1].title and tasks[1].class_label("animal") == "animal" and tasks[0].class_label("s") == "S"
    assert db.task("nope") is None
    assert db.sae_tasks("w8") == ["first_letter", helpers.SWEEP_TASK] and db.sae_tasks("early-w8") == ["first_letter"]
    assert db.has_absorption("w8", helpers.SWEEP_TASK) and not db.has_absorption("early-w8", helpers.SWEEP_TASK)
    assert db.has_absorption("early-w8") and not db.has_absorption("w32")


def test_every_absorption_accessor_defaults_to_first_letter_and_reads_the_named_task(db):
    assert db.sae_absorption("w8")["mean_absorption_fraction"] == pytest.approx(helpers.SWEEP_ABSORPTION["w8"]["frac"][0])
    other = db.sae_absorption("w8", helpers.SWEEP_TASK)
    assert other["task"] == helpers.SWEEP_TASK
    assert other["mean_absorption_fraction"] == pytest.approx(helpers.SWEEP_TASK_ABSORPTION["w8"]["frac"][0])
    assert db.sae_absorption("early-w8", helpers.SWEEP_TASK) is None
    assert db.all_sae_absorption()["sae_key"].tolist() == ["early-w8", "w8", "w16"]
    assert db.all_sae_absorption(helpers.SWEEP_TASK)["sae_key"].tolist() == ["w8", "w16"]
    both = db.all_tasks_sae_absorption()
    assert list(zip(both["sae_key"], both["task"])) == [("early-w8", "first_letter"), ("w8", "first_letter"),
                                                       ("w8", helpers.SWEEP_TASK), ("w16", "first_letter"),
                                                       ("w16", helpers.SWEEP_TASK)]
    assert db.sae_letters("w16")["letter"].tolist() == ["s", "t", "x"]
    classes = db.sae_letters("w16", helpers.SWEEP_TASK).set_index("letter")
    assert classes.index.tolist() == ["animal", "food"]
    assert classes.loc["animal", "main_latent"] == 9 and classes.loc["animal", "probe_f1"] == pytest.approx(0.8)
    assert db.sae_letter("w16", "animal", helpers.SWEEP_TASK)["mean_absorption_fraction"] == pytest.approx(0.46)
    assert db.sae_letter("w16", "animal") is None  # not a letter
    assert db.sae_letter_folds("w8", "food", helpers.SWEEP_TASK)["split_latents"].map(list).tolist() == [[2, 7]]
    assert db.sae_letter_k("w8", "food", helpers.SWEEP_TASK)["latents"].map(list).tolist() == [[2]]
    compare = db.sae_comparison(helpers.SWEEP_TASK).set_index("sae_key")
    assert compare["has_absorption"].to_dict() == {"early-w8": False, "w8": True, "w16": True, "w32": False}
    assert compare.loc["w16", "mean_main_recall"] == pytest.approx(helpers.SWEEP_TASK_ABSORPTION["w16"]["r"])
    assert db.all_sae_letters(helpers.SWEEP_TASK)["letter"].tolist() == ["animal", "food", "animal", "food"]
    assert db.hook_probe_runs("tiny", helpers.HOOK, helpers.SWEEP_TASK)["probe_run_id"].tolist() == \
        [helpers.sweep_probe_run_id(helpers.HOOK, task=helpers.SWEEP_TASK)]


def test_class_cosines_follow_the_tasks_class_order(db):
    """decoder_cos[i] is tasks.classes[i]: animal is the second class of SWEEP_TASK_CLASSES, not the first."""
    cos = db.letter_latent_cos("w16", "animal", helpers.SWEEP_TASK).set_index("latent")
    assert len(cos) == 16
    for latent in (0, 9, 15):
        assert cos.loc[latent, "decoder_cos"] == pytest.approx(helpers.sweep_class_cos(latent, 1))
        assert cos.loc[latent, "encoder_cos"] == pytest.approx(
            round(COS_SCALE / 2 * helpers.sweep_class_cos(latent, 1)) / COS_SCALE)
    letters = db.letter_latent_cos("w16", "s").set_index("latent")
    assert letters.loc[9, "decoder_cos"] == pytest.approx(helpers.sweep_letter_cos(9, "s"))
    one = db.latent_letter_cos("w8", 6, helpers.SWEEP_TASK)
    assert one["letter"].tolist() == list(helpers.SWEEP_TASK_CLASSES)
    assert one["decoder_cos"].tolist() == pytest.approx([helpers.sweep_class_cos(6, i) for i in range(3)])
    assert db.latent_letter_cos("w8", 6)["letter"].tolist() == list("abcdefghijklmnopqrstuvwxyz")


def test_a_word_of_two_tasks_has_its_verdict_in_each(db):
    frame = db.token_absorption("tiny", helpers.SWEEP_WORD_TOKEN)
    category = frame[frame["task"] == helpers.SWEEP_TASK].set_index("sae_key")
    assert category.index.tolist() == ["w8", "w16"]  # early-w8 was not measured on it
    assert category["letter"].tolist() == ["animal", "animal"]
    assert bool(category.loc["w8", "is_full_absorption"]) and category.loc["w8", "absorber"] == 6
    assert category.loc["w8", "absorber_cos"] == pytest.approx(helpers.sweep_class_cos(6, 1))
    assert category.loc["w16", "absorption_fraction"] == 0 and not bool(category.loc["w16", "is_full_absorption"])
    words = db.probe_words_by_text("tiny", "t7")
    assert list(zip(words["task"], words["letter"])) == [("first_letter", "t"), ("first_letter", "t"),
                                                         (helpers.SWEEP_TASK, "animal")]


def test_latent_roles_name_their_task(db):
    roles = db.latent_roles("w8", 6)  # the absorber of the animal test word in w8
    assert roles.absorbed[["task", "letter"]].values.tolist() == [[helpers.SWEEP_TASK, "animal"]]
    roles = db.latent_roles("w16", 11)  # main latent of t; split latent of animal
    assert roles.main[["task", "letter"]].values.tolist() == [["first_letter", "t"]]
    assert roles.split[["task", "letter", "split_rank"]].values.tolist() == \
        [["first_letter", "t", 1], [helpers.SWEEP_TASK, "animal", 2]]
    assert db.absorbed_examples("w8") == ["t7"] and db.absorbed_examples("w8", task=helpers.SWEEP_TASK) == ["t7"]
    assert db.absorbed_words("w8", "animal", helpers.SWEEP_TASK)["absorber"].tolist() == [6]
    assert db.absorbed_words("w8", "t")["absorber"].tolist() == [3]
