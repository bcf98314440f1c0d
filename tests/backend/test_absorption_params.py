"""Validation of the absorption views' URL parameters, and the absorber choice for a word."""

from __future__ import annotations

import pytest

from backend.database import absorber
from backend.params import ParamError, parse_letter, parse_word


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