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


def fold_resampled_means(fold_values: list[np.ndarray], fold_draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[B] means of a two-stage resample: in resample b the folds fold_draws[b] (drawn with replacement) each
    contribute a with-replacement resample of their own words, so the spread covers which probe (fold) a
    word was measured against as well as which words were measured. NaN where no word was drawn."""
    n_resamples = len(fold_draws)
    sums, counts = np.zeros(n_resamples), np.zeros(n_resamples)
    for fold, values in enumerate(fold_values):
        slots = np.argwhere(fold_draws == fold)  # [m, 2] (resample, slot) pairs that drew this fold
        if len(values) == 0 or len(slots) == 0:
            continue
        picks = rng.integers(0, len(values), size=(len(slots), len(values)))
        np.add.at(sums, slots[:, 0], values[picks].sum(axis=1))
        np.add.at(counts, slots[:, 0], len(values))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def fold_and_word_intervals(per_letter_fold_values: dict[int, list[np.ndarray]], included: list[int],
                            config: BootstrapConfig) -> tuple[dict[int, Interval], Interval]:
    """Per-letter mean of per-word values (pooled over folds) and the mean over `included` letters, with
    two-stage intervals: folds resampled (the same draw for every letter, since one fold's probe and split
    latents shape all its letters), then words within each drawn fold. With one fold (holdout) this is the
    word bootstrap of letter_and_overall_intervals."""
    rng = np.random.default_rng(config.seed)
    n_folds = max((len(v) for v in per_letter_fold_values.values()), default=1)
    fold_draws = rng.integers(0, n_folds, size=(config.n_resamples, n_folds))
    letters: dict[int, Interval] = {}
    resamples: dict[int, np.ndarray] = {}
    for j, fold_values in per_letter_fold_values.items():
        arrays = [np.asarray(v, dtype=np.float64) for v in fold_values]
        pooled = np.concatenate(arrays) if arrays else np.array([])
        resamples[j] = fold_resampled_means(arrays, fold_draws, rng)
        letters[j] = percentile_interval(float(pooled.mean()) if len(pooled) else np.nan, resamples[j], config.level)
    used = [j for j in included if not np.isnan(letters[j].value)]
    if not used:
        return letters, Interval(np.nan, np.nan, np.nan)
    overall_value = float(np.mean([letters[j].value for j in used]))
    with np.errstate(invalid="ignore"):
        overall = percentile_interval(overall_value, np.nanmean([resamples[j] for j in used], axis=0), config.level)
    return letters, overall


def between_fold_sd(per_letter_fold_values: dict[int, list[np.ndarray]], included: list[int]) -> float:
    """Standard deviation over folds of the headline number computed inside each fold alone (mean over the
    included letters of the per-letter means): how much the probe and split latents a fold gets move it.
    NaN with fewer than two folds."""
    n_folds = max((len(v) for v in per_letter_fold_values.values()), default=0)
    per_fold = []
    for fold in range(n_folds):
        means = [float(np.mean(per_letter_fold_values[j][fold])) for j in included
                 if fold < len(per_letter_fold_values[j]) and len(per_letter_fold_values[j][fold])]
        if means:
            per_fold.append(float(np.mean(means)))
    return float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else float("nan")
