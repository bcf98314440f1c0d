"""Probe-free absorption scores (precompute/pipeline/probe_free.py) as the pages show them: which measurement of a score
to quote for an SAE, how to say it in words, and whether it beats the density baseline. Pure rules, no SQL."""

from __future__ import annotations

from dataclasses import dataclass

# Browse's score sorts (`?sort=`), by the latent_scores column they rank
SCORE_SORTS = {"enc_dec": "enc_dec_score", "parent": "parent_score"}
SCORE_TITLES = {
    "enc_dec": "encoder–decoder divergence",
    "parent": "denser-parent cosine",
    "density": "density (baseline)",
}
SCORE_HELP = {
    "enc_dec": "1 − cosine of the latent's encoder and decoder directions. In toy models an absorbing latent's "
               "decoder carries its parent's direction while its encoder carves out an exception, so the two diverge.",
    "parent": "The largest cosine between the latent's decoder direction and a denser latent's: how much of a more "
              "general latent's direction it carries (a parent–child decomposition).",
}
LABEL_TITLES = {"full": "full absorbers (projection metric, ≥ {min_words} fully absorbed words each)",
                "paper": "absorbers (the paper's ablation metric)"}
LABEL_PREFERENCE = ("full", "paper")  # the headline measurement: full absorbers where there are enough to rank
# Dense absorbers (contract/vocabulary.py): the paper's "short", "snake" absorbers fire on a handful of words; one
# that fires on >= DENSE_ABSORBER of all tokens is a general latent carrying the class direction. Measured
# (bench/matryoshka_levels.py): 92 % of the Matryoshka 4k's fully absorbed first-letter words have such an absorber
# (median density 0.21), 10 % of the TopK 4k k32's (median 0.022).
from contract.vocabulary import DENSE_ABSORBER, is_dense_absorber  # noqa: E402,F401  (re-exported for the pages)


@dataclass(frozen=True)
class Stat:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class ScoreValidation:
    """One score_validation row: how the score ranks one kind of probe-found absorber in one SAE."""

    score: str
    labels: str
    min_words: int
    top_share: float
    n_latents: int
    n_absorbers: int
    n_top: int
    base_rate: float
    auc: Stat | None  # None: too few absorbers to rank
    precision: Stat | None
    recall: Stat | None

    @property
    def ranked(self) -> bool:
        return self.auc is not None


def stat(row: dict, name: str) -> Stat | None:
    value = row.get(name)
    return None if value is None else Stat(float(value), float(row[f"{name}_low"]), float(row[f"{name}_high"]))


def validation_from_row(row: dict) -> ScoreValidation:
    return ScoreValidation(row["score"], row["labels"], int(row["min_words"]), float(row["top_share"]),
                           int(row["n_latents"]), int(row["n_absorbers"]), int(row["n_top"]), float(row["base_rate"]),
                           stat(row, "auc"), stat(row, "precision"), stat(row, "recall"))


def headline(validations: list[ScoreValidation], score: str) -> ScoreValidation | None:
    """The measurement to quote for `score`: against full absorbers when they could be ranked, else the paper
    metric's, else (unranked) the full-absorber row that says how few there were; None when never validated."""
    rows = {v.labels: v for v in validations if v.score == score}
    for labels in LABEL_PREFERENCE:
        if labels in rows and rows[labels].ranked:
            return rows[labels]
    return next((rows[labels] for labels in LABEL_PREFERENCE if labels in rows), None)


def label_title(measured: ScoreValidation) -> str:
    return LABEL_TITLES[measured.labels].format(min_words=measured.min_words)


def order_verdict(measured: ScoreValidation, baseline: ScoreValidation | None) -> str:
    """The whole ranking (AUC): better than chance, and than density alone (its AUC interval above density's AUC)?"""
    if measured.auc.high < 0.5:
        return "worse than a random order: it ranks the probe-found absorbers *below* the other latents"
    if measured.auc.low <= 0.5:
        return "no better than a random order"
    if baseline is None or baseline.auc is None:
        return "better than a random order"
    if measured.auc.low <= baseline.auc.value:
        return f"no better than ranking by density alone (AUC {measured.auc.value:.2f} vs density's " \
               f"{baseline.auc.value:.2f})"
    return f"better than ranking by density alone (AUC {measured.auc.value:.2f} vs density's {baseline.auc.value:.2f})"


def top_verdict(measured: ScoreValidation) -> str:
    """The head of the list a user reads: does the top share hold more absorbers than a random pick?"""
    share = f"{measured.top_share:.0%}"
    if measured.precision.low > measured.base_rate:
        return f"its top {share} holds more absorbers than a random pick ({measured.precision.value:.0%} vs " \
               f"{measured.base_rate:.0%})"
    return f"its top {share} holds no more absorbers than a random pick ({measured.precision.value:.0%} vs " \
           f"{measured.base_rate:.0%})"


def verdict(measured: ScoreValidation, baseline: ScoreValidation | None) -> str:
    """One sentence, for this SAE: the whole order against chance and density, and the head of the list."""
    if measured.auc is None:
        return (f"Not measured in this SAE: it has {measured.n_absorbers} probe-found {label_title(measured)}, "
                "too few to rank.")
    return f"In this SAE the score is {order_verdict(measured, baseline)}; {top_verdict(measured)}."


def summary(measured: ScoreValidation) -> str:
    """AUC and precision/recall among the top share, with the base rate, in one line."""
    if measured.auc is None:
        return f"{measured.n_absorbers} absorbers among {measured.n_latents:,} alive latents: too few to rank"
    return (f"AUC {measured.auc} · precision {measured.precision} and recall {measured.recall} in the top "
            f"{measured.top_share:.0%} ({measured.n_top} latents; base rate {measured.base_rate:.2f}) — against "
            f"{measured.n_absorbers} {label_title(measured)}")


def sort_label(score: str, measured: ScoreValidation | None) -> str:
    """A Browse sort option: the score's name with its measured precision in this SAE."""
    title = f"{SCORE_TITLES[score]} (probe-free absorption suspect)"
    if measured is None:
        return f"{title} — not validated here"
    if measured.precision is None:
        return f"{title} — too few absorbers here to measure"
    return (f"{title} — precision {measured.precision.value:.2f} in the top {measured.top_share:.0%} "
            f"(base rate {measured.base_rate:.2f})")
