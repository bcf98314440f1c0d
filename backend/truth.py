"""Ground truth of a toy run (precompute/toy/hierarchy.py), as the pages show it: which true feature each latent
is, which parent an absorbing latent swallowed, and the projection metric's precision and recall against the
truth. Streamlit-free; the rules (thresholds, intervals) live here, the SQL in backend/queries.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# A child latent has absorbed its parent when its decoder carries both directions: cosine with each at least this
# (the toy's absorbing latents measure ~0.67-0.74 with both; a clean latent < 0.1 with any other feature).
ABSORBING_COS = 0.3
Z_95 = 1.959964  # two-sided 95 %


@dataclass(frozen=True)
class Rate:
    value: float | None  # None: no word to measure it on
    low: float | None
    high: float | None
    hits: int
    total: int


def wilson(hits: int, total: int, z: float = Z_95) -> Rate:
    """A binomial proportion with its Wilson score interval. The words are the resampling unit (each word is one
    token, judged once), so the interval a bootstrap over words gives for a share of them is this one, in closed
    form and without randomness on a page."""
    if total == 0:
        return Rate(None, None, None, 0, 0)
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Rate(p, max(0.0, centre - half), min(1.0, centre + half), hits, total)


@dataclass(frozen=True)
class Verdicts:
    """The projection metric's absorption flag against "a child is present", over the words it judges."""
    label: str  # a class, or 'all'
    true_pos: int
    false_pos: int
    false_neg: int
    true_neg: int

    @property
    def precision(self) -> Rate:
        return wilson(self.true_pos, self.true_pos + self.false_pos)

    @property
    def recall(self) -> Rate:
        return wilson(self.true_pos, self.true_pos + self.false_neg)

    @property
    def n_words(self) -> int:
        return self.true_pos + self.false_pos + self.false_neg + self.true_neg


def verdicts(counts: pd.DataFrame) -> dict[str, Verdicts]:
    """Per class (TRUTH_VERDICT_COUNTS rows), and 'all' pooled over the classes."""
    out = {row["class"]: Verdicts(row["class"], int(row["true_pos"]), int(row["false_pos"]), int(row["false_neg"]),
                                  int(row["true_neg"])) for _, row in counts.iterrows()}
    if out:
        out["all"] = Verdicts("all", *(sum(getattr(v, f) for v in out.values())
                                       for f in ("true_pos", "false_pos", "false_neg", "true_neg")))
    return out


def absorbing(latents: pd.DataFrame) -> pd.DataFrame:
    """The latents whose decoder is a child's and also its parent's (the rule: ABSORBING_COS on both)."""
    if latents.empty:
        return latents
    return latents[(latents["child_cos"] >= ABSORBING_COS) & (latents["parent_cos"] >= ABSORBING_COS)]


def latent_summary(row: dict) -> str:
    """One latent's truth in words, for the latent page."""
    if row["child_cos"] is not None and row["child_cos"] >= ABSORBING_COS and row["parent_cos"] >= ABSORBING_COS:
        return (f"an **absorbing latent**: its decoder is child feature `{row['child']}` (cos {row['child_cos']:.2f}) "
                f"and also carries its parent `{row['parent']}` (cos {row['parent_cos']:.2f}), so it fires for "
                f"`{row['parent']}` where `{row['child']}` is present and the `{row['parent']}` latent need not")
    return f"true {row['role']} feature `{row['feature']}` (decoder cos {row['feature_cos']:.2f})"
