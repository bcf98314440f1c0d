"""URL parameter validation: every bad value is a ParamError with a readable message."""

from __future__ import annotations

import pytest

from backend.params import (
    SORTS,
    ParamError,
    parse_choice,
    parse_latent,
    parse_page,
    parse_sae_key,
    parse_sae_keys,
    parse_text,
)


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("0", 0), (" 7 ", 7), ("4095", 4095)])
def test_valid_latents(value, expected):
    assert parse_latent(value, 4096) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "4096", "1e3", "3.0", "٣", "１", "0x10", "1;DROP TABLE x", "9" * 30])
def test_invalid_latents(value):
    with pytest.raises(ParamError):
        parse_latent(value, 4096)


def test_sae_key_defaults_to_first_and_rejects_unknown():
    assert parse_sae_key(None, ["a", "b"]) == "a"
    with pytest.raises(ParamError, match="Known SAEs: a, b"):
        parse_sae_key("' OR 1=1", ["a", "b"])
    with pytest.raises(ParamError, match="no SAEs"):
        parse_sae_key(None, [])


def test_messages_do_not_echo_control_characters_or_huge_values():
    with pytest.raises(ParamError) as error:
        parse_sae_key("x\x00\x1b[31m" + "y" * 1000, ["a"])
    assert "\x00" not in str(error.value) and "\x1b" not in str(error.value)
    assert len(str(error.value)) < 200


def test_choices_pages_and_text():
    assert parse_choice(None, SORTS, "sort", "latent") == "latent"
    with pytest.raises(ParamError):
        parse_choice("DROP", SORTS, "sort", "latent")
    assert parse_page("3") == 3
    with pytest.raises(ParamError):
        parse_page("-1")
    assert parse_text("snake", "q") == "snake"
    with pytest.raises(ParamError):
        parse_text("a\x00b", "q")


KNOWN = ["early-w8", "w8", "w16", "w32"]


@pytest.mark.parametrize("value, expected", [
    (None, KNOWN), ("", KNOWN), ("  ", KNOWN),  # absent or blank: every SAE
    ("w16", ["w16"]),
    ("w16,w8", ["w8", "w16"]),  # database order, whatever the URL's order
    (" w8 , w32 ", ["w8", "w32"]),
    ("w8,w8,w16", ["w8", "w16"]),  # duplicates collapse
])
def test_valid_sae_key_lists(value, expected):
    assert parse_sae_keys(value, KNOWN) == expected


@pytest.mark.parametrize("value, message", [
    ("w8,nope", "Unknown SAE `nope` in `saes`. Known SAEs: early-w8, w8, w16, w32."),
    ("a,b,w8", "Unknown SAEs `a`, `b` in `saes`"),
    ("a,b,c,d,e,f,g", "`e` …"),  # at most five named
    ("w8,,w16", "empty entry"),
    ("w8,", "empty entry"),
    (",", "empty entry"),
    ("w8\x00", "control characters"),
    ("w" * 2001, "longer than 2000"),
    ("' OR 1=1 --", "Unknown SAE `' OR 1=1 --`"),
])
def test_invalid_sae_key_lists(value, message):
    with pytest.raises(ParamError) as error:
        parse_sae_keys(value, KNOWN)
    assert message in str(error.value)


def test_sae_key_list_messages_stay_short_and_clean():
    with pytest.raises(ParamError) as error:
        parse_sae_keys("x\x1b[31m" + "y" * 1000, KNOWN)
    assert "\x1b" not in str(error.value)
    with pytest.raises(ParamError) as error:
        parse_sae_keys(",".join("k" * 300 + str(i) for i in range(6)), KNOWN)
    assert len(str(error.value)) < 400
    with pytest.raises(ParamError, match="no SAEs"):
        parse_sae_keys(None, [])


def test_sae_keys_default_applies_only_when_the_url_names_none():
    default = [KNOWN[1]]
    assert parse_sae_keys(None, KNOWN, default=default) == default
    assert parse_sae_keys("  ", KNOWN, default=default) == default
    assert parse_sae_keys(KNOWN[0], KNOWN, default=default) == [KNOWN[0]]
