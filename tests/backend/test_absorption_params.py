"""Validation of the absorption views' URL parameters, and the absorber choice for a word."""

from __future__ import annotations

import pytest

from backend.database import absorber
from backend.params import LETTERS, ParamError, parse_class, parse_letter, parse_task, parse_word


@pytest.mark.parametrize("value, expected", [("s", "s"), ("S", "s"), (" z ", "z"), (None, "s"), ("", "s")])
def test_valid_letters(value, expected):
    assert parse_letter(value, default="s") == expected


@pytest.mark.parametrize("value", ["7", "ss", "é", "ß", "ａ", "s;", "' OR 1=1 --", "x" * 500])
def test_invalid_letters(value):
    with pytest.raises(ParamError, match="single letter from a to z"):
        parse_letter(value, default="s")


def test_missing_letter_without_default_is_an_error():
    with pytest.raises(ParamError, match="missing"):
        parse_letter(None)


TASKS = ["first_letter", "wordnet_category"]
CATEGORIES = ("food", "animal", "artifact")


@pytest.mark.parametrize("value, expected", [(None, "first_letter"), ("", "first_letter"), (" ", "first_letter"),
                                             ("first_letter", "first_letter"), ("wordnet_category", "wordnet_category"),
                                             (" WordNet_Category ", "wordnet_category")])
def test_valid_tasks(value, expected):
    assert parse_task(value, TASKS) == expected


@pytest.mark.parametrize("value", ["wordnet_pos", "letter", "first letter", "first_letter;", "' OR 1=1 --", "x" * 500,
                                   "\x00", "名前"])
def test_unknown_tasks_list_the_databases_tasks(value):
    with pytest.raises(ParamError, match="Tasks in this database: first_letter, wordnet_category") as error:
        parse_task(value, TASKS)
    assert len(str(error.value)) < 200


def test_a_database_without_first_letter_defaults_to_its_first_task_and_one_without_tasks_says_so():
    assert parse_task(None, ["wordnet_pos"]) == "wordnet_pos"
    with pytest.raises(ParamError, match="no absorption tasks"):
        parse_task("wordnet_pos", [])


@pytest.mark.parametrize("value, expected", [("animal", "animal"), (" Animal ", "animal"), ("FOOD", "food"),
                                             (None, "food"), ("", "food")])
def test_valid_classes(value, expected):
    assert parse_class(value, CATEGORIES, "wordnet_category", default="food") == expected


@pytest.mark.parametrize("value", ["s", "animals", "noun", "anim al", "' OR 1=1 --", "x" * 500])
def test_invalid_classes_list_the_tasks_classes(value):
    with pytest.raises(ParamError, match=r"class of task wordnet_category \(food, animal, artifact\)"):
        parse_class(value, CATEGORIES, "wordnet_category", default="food")


def test_letters_are_classes_of_first_letter_case_insensitively():
    assert parse_class("S", LETTERS, "first_letter", default="s", name="letter") == "s"
    with pytest.raises(ParamError, match="`letter` must be a single letter from a to z"):
        parse_class("animal", LETTERS, "first_letter", default="s", name="letter")
    with pytest.raises(ParamError, match="missing"):
        parse_class(None, CATEGORIES, "wordnet_category")


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("  ", None), ("snake", "snake"),
                                             (" snake ", "snake"), ("Snake", "Snake"), ("a" * 64, "a" * 64)])
def test_valid_words(value, expected):
    assert parse_word(value) == expected


@pytest.mark.parametrize("value, message", [("a" * 65, "longer than 64"), ("sn\x00ake", "non-printable"),
                                            ("snake\n", "non-printable"), ("\x1b[31m", "non-printable")])
def test_invalid_words(value, message):
    with pytest.raises(ParamError, match=message):
        parse_word(value)


def test_absorber_reads_the_stored_absorber_columns():
    assert absorber({"absorber": 9, "absorber_act": 2.0, "absorber_score": 0.5}) == (9, 2.0, 0.5)


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_word_whose_top_latents_are_all_split_latents_has_no_absorber(missing):
    assert absorber({"absorber": missing, "absorber_act": None, "absorber_score": None}) is None
    assert absorber({}) is None
