"""The one vocabulary of absorption verdicts (backend/verdicts.py)."""

from __future__ import annotations

from backend import verdicts


def test_the_projection_verdict_never_says_partly_at_100_percent():
    assert verdicts.projection_verdict(1.0, True) == "fully absorbed"
    assert verdicts.projection_verdict(0.3, False) == "partly absorbed (30%)"
    assert verdicts.projection_verdict(0.997, False) == ("partly absorbed (fraction 0.997, but not full absorption: "
                                                          "a split latent still fires)")
    assert verdicts.projection_verdict(0.0, False) == verdicts.projection_verdict(None, None) == "not absorbed"


def test_a_words_verdict_joins_both_metrics():
    projection = {"absorption_fraction": 1.0, "is_full_absorption": True}
    assert verdicts.word_verdict(projection, {"is_absorption": True}) == "fully absorbed; absorbed (paper metric)"
    assert verdicts.word_verdict(None, {"is_absorption": False}) == "not absorbed"
    assert verdicts.word_verdict({"absorption_fraction": None, "is_full_absorption": None}, None) == "not absorbed"
