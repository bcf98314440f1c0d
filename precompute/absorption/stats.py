"""Bootstrap confidence intervals over words: every per-letter and per-SAE absorption number depends on
which words were measured, so each comes with an interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapConfig:
    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0


@dataclass
class Interval:
    value: float
    low: float
    high: float


def resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[n_resamples] means of `values` resampled with replacement (NaN if there are no values)."""
    if len(values) == 0:
        return np.full(n_resamples, np.nan)
    picks = rng.integers(0, len(values), size=(n_resamples, len(values)))
    return values[picks].mean(axis=1)


def percentile_interval(value: float, resamples: np.ndarray, level: float) -> Interval:
    if np.all(np.isnan(resamples)):
        return Interval(value, np.nan, np.nan)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(resamples, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high))


def letter_and_overall_intervals(per_letter_values: dict[int, np.ndarray], included: list[int],
                                 config: BootstrapConfig) -> tuple[dict[int, Interval], Interval]:
    """Per-letter mean of per-word values with its interval, and the mean over `included` letters
    with a stratified interval (each letter's words resampled on their own, then averaged)."""
    rng = np.random.default_rng(config.seed)
    resamples = {j: resampled_means(np.asarray(v, dtype=np.float64), config.n_resamples, rng)
                 for j, v in per_letter_values.items()}
    letters = {j: percentile_interval(float(np.mean(v)) if len(v) else np.nan, resamples[j], config.level)
               for j, v in per_letter_values.items()}
    used = [j for j in included if len(per_letter_values[j])]
    if not used:
        return letters, Interval(np.nan, np.nan, np.nan)
    overall_value = float(np.mean([letters[j].value for j in used]))
    overall = percentile_interval(overall_value, np.mean([resamples[j] for j in used], axis=0), config.level)
    return letters, overall
