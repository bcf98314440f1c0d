"""One vocabulary for absorption verdicts: every page turns stored numbers into these words, here and nowhere
else, so that no two pages (or two lines of one page) word the same measurement differently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FULL = "fully absorbed"
PARTLY = "partly absorbed"
NOT_ABSORBED = "not absorbed"
PAPER = "absorbed (paper metric)"


def projection_verdict(fraction: float | None, is_full: bool | None) -> str:
    """The projection metric's verdict on one word. A fraction that rounds to 100 % without full absorption (a split
    latent still fires, or no absorber passes the full-absorption cosine) is said so instead of "partly (100%)"."""
    if is_full:
        return FULL
    if fraction is None or not fraction > 0:
        return NOT_ABSORBED
    shown = f"{fraction:.0%}"
    if shown == "100%":
        return f"{PARTLY} (fraction {fraction:.3f}, but not full absorption: a split latent still fires)"
    return f"{PARTLY} ({shown})"


def word_verdict(projection: Mapping[str, Any] | None, ablation: Mapping[str, Any] | None) -> str:
    """Both metrics' verdicts on one word in one SAE, at a glance."""
    parts = []
    if projection is not None and projection_verdict(projection["absorption_fraction"],
                                                     projection["is_full_absorption"]) != NOT_ABSORBED:
        parts.append(projection_verdict(projection["absorption_fraction"], projection["is_full_absorption"]))
    if ablation is not None and ablation["is_absorption"]:
        parts.append(PAPER)
    return "; ".join(parts) or NOT_ABSORBED


def main_latent_as_absorber(class_label: str) -> str:
    """What it means when the recorded absorber is the class's own main latent (the split-latent rule's blind spot:
    the main latent is the best encoder cosine with the probe, the split latents the k-sparse probe's choice)."""
    return (f"{class_label}'s main latent (best encoder cosine with the probe) but not one of its split latents (the "
            "k-sparse probe's choice), so the projection metric counts it as an absorber")
