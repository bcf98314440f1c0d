"""Every case of the SAEBench projection metric, with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.absorption.projection import (
    ProjectionMetricConfig,
    absorption_fraction,
    projection_absorption,
    select_split_latents,
)


@pytest.mark.parametrize("P, M, A, expected", [
    (10.0, 12.0, 9.0, 0.0),   # M >= P: the split latents explain the probe
    (10.0, 10.0, 9.0, 0.0),   # M == P counts as explained
    (10.0, 0.0, 3.9, 0.0),    # A / P < 0.4: not enough absorber projection, even with silent split latents
    (10.0, 0.0, 4.0, 1.0),    # M <= 0 and A / P >= 0.4: fully absorbed
    (10.0, -2.0, 5.0, 1.0),   # negative M is still <= 0
    (10.0, 4.0, 5.0, 5.0 / 9.0),  # partial: min(A, P - M) = 5 -> 5 / (5 + 4)
    (10.0, 4.0, 8.0, 0.6),    # absorbed capped at P - M = 6 -> 6 / (6 + 4)
    (0.0, -1.0, 1.0, 0.0),    # P = 0: proportion undefined, never absorption
    (-5.0, -10.0, 1.0, 0.0),  # negative P: A / P < 0.4
])
def test_absorption_fraction_cases(P, M, A, expected):
    assert absorption_fraction(np.array([P]), np.array([M]), np.array([A]))[0] == pytest.approx(expected)


def make_case():
    """d_model 4, probe along e0. Latent 0: the split ('main') latent, decoder e0.
    Latent 1: absorber, decoder mostly e1 with a 0.2 e0 component. Latent 2: unrelated (e2)."""
    W_dec = np.array([[1.0, 0, 0, 0], [0.2, 0.98, 0, 0], [0, 0, 1.0, 0]])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    probe = np.array([2.0, 0, 0, 0])  # not unit: the metric normalises it
    return W_dec, probe


def test_silent_main_latent_with_absorber_is_full_absorption():
    W_dec, probe = make_case()
    codes = np.array([[0.0, 20.0, 1.0]])  # main latent silent, absorber fires
    acts = codes @ W_dec  # the residual is exactly the reconstruction
    result = projection_absorption(acts, codes, probe, W_dec, split_latents=[0])
    cos1 = W_dec[1, 0]
    assert result.probe_projection[0] == pytest.approx(20 * cos1)
    assert result.split_projection[0] == 0.0
    assert result.absorption_fraction[0] == pytest.approx(1.0)
    assert result.is_full_absorption[0]
    assert result.top_latents[0, 0] == 1


def test_firing_main_latent_is_not_absorption():
    W_dec, probe = make_case()
    codes = np.array([[5.0, 0.0, 3.0]])
    result = projection_absorption(codes @ W_dec, codes, probe, W_dec, split_latents=[0])
    assert result.absorption_fraction[0] == 0.0
    assert not result.is_full_absorption[0]


def test_absorber_with_small_probe_cosine_does_not_count():
    W_dec = np.array([[1.0, 0, 0, 0], [0.05, 1.0, 0, 0]])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    codes = np.array([[0.0, 50.0]])
    acts = codes @ W_dec + np.array([1.0, 0, 0, 0])  # the probe sees the letter in the error term
    result = projection_absorption(acts, codes, np.array([1.0, 0, 0, 0]), W_dec, split_latents=[0],
                                   config=ProjectionMetricConfig(absorber_cos_threshold=0.1))
    assert result.absorber_projection[0] == 0.0  # cos 0.05 < 0.1: not a candidate for the fraction
    assert result.absorption_fraction[0] == 0.0
    assert result.is_full_absorption[0], "full absorption only needs cos >= 0.025 for the top latent"


def test_at_most_three_absorbers_are_summed():
    d_sae = 6
    W_dec = np.zeros((d_sae, 2))
    W_dec[0] = [1, 0]
    W_dec[1:] = [0.5, np.sqrt(0.75)]  # five identical absorbers, cos 0.5
    codes = np.array([[0.0, 1, 1, 1, 1, 1]])
    result = projection_absorption(codes @ W_dec, codes, np.array([1.0, 0]), W_dec, split_latents=[0])
    assert result.absorber_projection[0] == pytest.approx(1.5)


@pytest.mark.parametrize("f1, expected_k", [
    ([0.5, 0.52, 0.9], 1),          # +0.02 <= tau: stop at k = 1
    ([0.5, 0.6, 0.7, 0.71], 3),     # +0.1, +0.1, then +0.01 stops
    ([0.0, 0.0], 1),                # k = 1 always accepted, even at F1 0
    ([0.3], 1),
])
def test_split_latents(f1, expected_k):
    assert select_split_latents(f1, [10, 11, 12, 13], tau=0.03) == [10, 11, 12, 13][:expected_k]
