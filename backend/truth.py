"""Ground truth of a toy run (precompute/toy/hierarchy.py), as the pages show it: which true feature each latent
is, which parent an absorbing latent swallowed, and the projection metric's precision and recall against the
truth. Streamlit-free; the rules (thresholds, intervals) live here, the SQL in backend/queries.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# A child latent has absorbed its parent when its decoder carries both directions: cosine with each at least this
# (the toy's absorbing latents measure ~0.67-0.74 with both, bench/toy_demo.py; a clean latent < 0.1 with any other
# feature). Above cos(45 deg) = 0.71 / sqrt(2) ~ 0.5 no single direction explains the decoder: a parent latent with a
# trace of one child (e.g. 0.85 parent, 0.47 child) is a parent latent, not an absorber.
ABSORBING_COS = 0.5
OWN_LATENT_COS = 0.95  # a true feature "has a latent of its own" when some decoder is this close to its direction
Z_95 = 1.959964  # two-sided 95 %


@dataclass(frozen=True)
class Rate:
    value: float | None  # None: no word to measure it on
    low: float | None
    high: float | None
    hits: int
    total: int


def wilson(hits: int, total: int, z: float = Z_95) -> Rate:
    """A binomial proportion with its Wilson score interval: closed form (no randomness on a page), and unlike a
    percentile bootstrap over words it does not collapse to [1, 1] when every word of a small class is a hit."""
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


def is_absorbing(child_cos: float | None, parent_cos: float | None) -> bool:
    """A decoder that is a child's and also its parent's (ABSORBING_COS on both)."""
    return (child_cos is not None and parent_cos is not None and not pd.isna(child_cos) and not pd.isna(parent_cos)
            and child_cos >= ABSORBING_COS and parent_cos >= ABSORBING_COS)


def absorbing(latents: pd.DataFrame) -> pd.DataFrame:
    """The latents whose decoder is a child's and also its parent's (is_absorbing)."""
    if latents.empty:
        return latents
    return latents[(latents["child_cos"] >= ABSORBING_COS) & (latents["parent_cos"] >= ABSORBING_COS)]


def own_latent_features(latents: pd.DataFrame, role: str = "parent") -> list[str]:
    """The true features of `role` that some latent is, alone (decoder cosine > OWN_LATENT_COS)."""
    own = latents[(latents["role"] == role) & (latents["feature_cos"] > OWN_LATENT_COS)]
    return sorted(set(own["feature"]))


def latent_summary(row: dict) -> str:
    """One latent's truth in words, for the latent page."""
    if is_absorbing(row["child_cos"], row["parent_cos"]):
        return (f"an **absorbing latent**: its decoder is child feature `{row['child']}` (cos {row['child_cos']:.2f}) "
                f"and also carries its parent `{row['parent']}` (cos {row['parent_cos']:.2f}), so it fires for "
                f"`{row['parent']}` where `{row['child']}` is present and the `{row['parent']}` latent need not")
    return f"true {row['role']} feature `{row['feature']}` (decoder cos {row['feature_cos']:.2f})"
