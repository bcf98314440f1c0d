"""One vocabulary for absorption verdicts: every page turns stored numbers into these words, here and nowhere
else, so that no two pages (or two lines of one page) word the same measurement differently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.vocabulary import SAEBENCH_SPLIT_RULE, split_rule_name

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


def main_outside_split(main_latent: int, split_latents: list[int], class_label: str) -> str:
    """The flag on a class whose main latent is not one of its split latents."""
    listed = ", ".join(str(int(x)) for x in split_latents) or "none"
    return (f"The main latent {main_latent} is not one of {class_label}'s split latents ({listed}). Words where it "
            f"carries {class_label} without the split latents are counted as absorbed, with latent {main_latent} as "
            f"their absorber: read those as {class_label}'s own latent, not as absorption.")


def rule_sensitivity(value: float | None, other_value: float | None, rule: str | None, other_rule: str | None,
                     band: tuple[float, float] | None, what: str = "mean absorption fraction") -> str:
    """One line on the split-latent rule: the number under the other rule, the method band, and which number SAEBench
    would report (under its rule; it also measures on an 80/20 split of one word sample, not cross-fitted folds)."""
    if rule is None:
        return ""
    if other_rule is None or other_value is None:
        return f"Split latents by {split_rule_name(rule)}; the other rule was not measured in this database."
    if value is not None and abs(other_value - value) < 5e-4:
        text = f"Both split-latent rules give {value:.3f}"
    else:
        text = (f"Split latents by {split_rule_name(rule)}: {value:.3f}; by {split_rule_name(other_rule)}: "
                f"{other_value:.3f}")
    if band is not None:
        text += f". Method band (both rules' intervals) [{band[0]:.3f}, {band[1]:.3f}]"
    saebench = value if rule == SAEBENCH_SPLIT_RULE else other_value
    return text + f". SAEBench's rule would report {saebench:.3f} ({what})."


UNSTABLE_MARK = "†"  # the class's split latents change between folds: the verdict depends on the word's fold


def matrix_cell(verdict: str, absorber_latent: int | None, is_main_latent: bool, unstable: bool) -> str:
    """One SAE x task cell of the token page's verdict matrix: the verdict, its absorber, and the unstable mark."""
    text = verdict
    if absorber_latent is not None and verdict != NOT_ABSORBED:
        text += f" by {absorber_latent}" + (" (the class's main latent)" if is_main_latent else "")
    return f"{text} {UNSTABLE_MARK}" if unstable else text


def absorbed_summary(class_text: str, absorbers: dict[str, int | None], n_measured: int) -> str:
    """The token page's one line per task: in how many of the SAEs that measured the word it was absorbed, and by
    which latents (absorbers: SAE -> its absorbing latent, for the SAEs that absorbed it)."""
    if n_measured == 0:
        return f"{class_text}: measured in no SAE"
    if not absorbers:
        return f"{class_text}: not absorbed in any of the {n_measured} SAEs that measured it"
    latents = ", ".join(str(latent) for latent in absorbers.values() if latent is not None)
    return (f"{class_text}: absorbed in {len(absorbers)} of {n_measured} SAEs" + (f", by {latents}" if latents else ""))
