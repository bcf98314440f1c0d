"""The constants and rules that define the science's vocabulary, in one place for the writer, the reader and every
page: which classes count in a headline, what a dense absorber is, which words are measured."""

from __future__ import annotations

# Classes whose probe F1 is at most this are left out of the headline means (SAEBench's rule): a probe that cannot
# tell the class apart gives no reference to measure absorption against.
MIN_PROBE_F1 = 0.6

# An absorber that fires on at least this share of all tokens is a general (dense) latent carrying the class's
# direction, not a token-aligned latent that absorbed it (a Matryoshka SAE's coarse latents, for example).
DENSE_ABSORBER = 0.1

# A word is measured at a hook when it is held out from its probe (a test word: its fold's probe was fitted on the
# other folds, or SAEBench's 20 % test split) and that probe gets it right: absorption is the SAE missing what the
# probe sees. measured_word_sql is the same rule in SQL over a probe_words row.


def measured_word_sql(alias: str) -> str:
    """`is_measured_word` over the probe_words row named `alias` (an alias from the query text, never a value)."""
    return f"({alias}.is_test AND {alias}.probe_logit > 0)"


def is_measured_word(is_test: bool, probe_logit: float) -> bool:
    return bool(is_test) and probe_logit > 0


def is_headline_class(probe_f1: float | None) -> bool:
    return probe_f1 is not None and probe_f1 > MIN_PROBE_F1


def is_dense_absorber(density: float | None) -> bool:
    return density is not None and density == density and density >= DENSE_ABSORBER


# How a class's split latents are chosen (precompute/absorption/ksparse.py; docs/split_rule.md): candidates ranked by
# the L1 probe's weight ("l1", SAEBench's rule), by each latent's own F1 as a classifier on the training words ("f1"),
# or SAEBench's choice unless it classifies worse than the class's best single latent alone ("guarded", the
# default), then the same k-sparse fits and tau rule. Every build measures a second rule beside its own (SAEBench's,
# or for SAEBench's the default); the pages show the range between them as the method band.
SPLIT_RULE_NAMES = {"guarded": "guarded L1 ranking", "l1": "L1-weight ranking (SAEBench)", "f1": "own-F1 ranking"}
SAEBENCH_SPLIT_RULE = "l1"


def split_rule_name(rule: str | None) -> str:
    return SPLIT_RULE_NAMES.get(rule or "", f"rule {rule!r}")


def method_band(*intervals: tuple[float | None, float | None]) -> tuple[float, float] | None:
    """The range that covers every given (low, high) interval: what a re-run could report once the split-latent rule
    is counted as a choice, beside the folds and words each interval covers. None when no interval is known."""
    known = [(low, high) for low, high in intervals if low is not None and high is not None and low == low and high == high]
    if not known:
        return None
    return min(low for low, _ in known), max(high for _, high in known)
