"""SAEBench's probe-projection absorption metric, vectorised over words.

For each word (a probe true positive): a = residual activation at the word, z = SAE codes,
d = unit probe direction, cos_i = cos(d, W_dec[i]), proj_i = z_i * cos_i, P = a . d (no bias),
M = sum of proj over the split latents, A = sum of the top <= 3 proj among non-split latents with
cos >= 0.1 and proj > 0. Then the absorption fraction is
    0 if M >= P or A / P < 0.4;  1 if M <= 0;  else clip(min(A, P - M) / (min(A, P - M) + M), 0, 1)
and full absorption holds when every split latent is < 1e-8, the top-1 latent by proj has
cos >= 0.025, P >= 0 and top proj / P >= 0.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from precompute.absorption.codes import Codes, candidate_latents


@dataclass(frozen=True)
class ProjectionMetricConfig:
    absorber_cos_threshold: float = 0.1  # SAEBench absorption_fraction_probe_cos_sim_threshold
    full_absorption_cos_threshold: float = 0.025  # SAEBench full_absorption_probe_cos_sim_threshold
    projection_proportion_threshold: float = 0.4  # SAEBench probe_projection_proportion_threshold
    max_absorbing_latents: int = 3  # SAEBench absorption_fraction_max_absorbing_latents
    inactive_eps: float = 1e-8  # a split latent "does not fire" below this
    top_k_latents: int = 5  # latents kept per word for display (the absorber is the first non-split one)


@dataclass
class ProjectionResult:
    probe_projection: np.ndarray  # [n] P
    split_projection: np.ndarray  # [n] M
    absorber_projection: np.ndarray  # [n] A
    absorption_fraction: np.ndarray  # [n]
    is_full_absorption: np.ndarray  # [n] bool
    top_latents: np.ndarray  # [n, k] latent ids by projection, highest first
    top_projections: np.ndarray  # [n, k]


def absorption_fraction(P: np.ndarray, M: np.ndarray, A: np.ndarray, proportion_threshold: float = 0.4) -> np.ndarray:
    """The SAEBench case analysis, elementwise. The rules apply in order: the zero rule wins over the
    one rule (M <= 0 with too little absorber projection is 0, not 1)."""
    P, M, A = (np.asarray(x, dtype=np.float64) for x in (P, M, A))
    with np.errstate(divide="ignore", invalid="ignore"):
        proportion = A / P
        absorbed = np.minimum(A, P - M)
        partial = np.clip(absorbed / (absorbed + M), 0.0, 1.0)
    # P = 0 makes A / P undefined (SAEBench would divide by zero): no probe signal, no absorption.
    zero = (M >= P) | (P <= 0.0) | ~(proportion >= proportion_threshold)
    return np.where(zero, 0.0, np.where(M <= 0.0, 1.0, partial))


def decoder_probe_cos(W_dec: np.ndarray, direction: np.ndarray, decoder_norms: np.ndarray | None = None) -> np.ndarray:
    """[d_sae] cos(W_dec[i], direction) for a unit direction; decoder_norms [d_sae] (computed once per SAE by
    its caller) spares a [d_sae, d_model] temporary per call."""
    norms = np.linalg.norm(W_dec, axis=1) if decoder_norms is None else decoder_norms
    return (W_dec @ direction) / np.maximum(norms, 1e-12)


def projection_absorption(acts: np.ndarray, codes: Codes, probe_direction: np.ndarray, W_dec: np.ndarray,
                          split_latents: list[int], config: ProjectionMetricConfig = ProjectionMetricConfig(),
                          decoder_norms: np.ndarray | None = None) -> ProjectionResult:
    """acts [n, d_model], codes [n, d_sae] (dense or CSR), probe_direction [d_model], W_dec [d_sae, d_model].
    CSR codes are densified over the few latents that can matter (see candidate_latents), never over d_sae:
    every number but a zero projection comes from a stored code, and the zeros a stable top-k can pick are the
    lowest-index ones, which are kept, so the result equals the dense computation's."""
    direction = probe_direction / np.linalg.norm(probe_direction)
    cos = decoder_probe_cos(W_dec, direction, decoder_norms)  # [d_sae]
    split = np.zeros(codes.shape[1], dtype=bool)
    split[list(split_latents)] = True
    latents = None  # every latent (dense codes)
    if sp.issparse(codes):
        latents = candidate_latents(codes, max(config.top_k_latents, config.max_absorbing_latents), list(split_latents))
        codes, cos, split = codes[:, latents].toarray(), cos[latents], split[latents]  # [n, n_candidates]
    result = dense_projection_absorption(acts @ direction, codes, cos, split, config)
    if latents is not None:
        result.top_latents = latents[result.top_latents]
    return result


def dense_projection_absorption(P: np.ndarray, codes: np.ndarray, cos: np.ndarray, split: np.ndarray,
                                config: ProjectionMetricConfig) -> ProjectionResult:
    """P [n] probe projections, codes [n, m], cos [m] and split [m] (bool) over the same m latents."""
    proj = codes * cos[None, :]  # [n, m]
    M = proj[:, split].sum(axis=1)
    candidates = np.where((~split)[None, :] & (cos >= config.absorber_cos_threshold)[None, :] & (proj > 0), proj, 0.0)
    k = min(config.max_absorbing_latents, candidates.shape[1])
    A = -np.sort(-candidates, axis=1)[:, :k].sum(axis=1)  # zeros pad words with fewer candidates
    fraction = absorption_fraction(P, M, A, config.projection_proportion_threshold)

    top_k = min(config.top_k_latents, proj.shape[1])
    top = np.argsort(-proj, axis=1, kind="stable")[:, :top_k]
    top_proj = np.take_along_axis(proj, top, axis=1)
    split_silent = (np.abs(codes[:, split]) < config.inactive_eps).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        top_share = top_proj[:, 0] / P
    is_full = (split_silent & (cos[top[:, 0]] >= config.full_absorption_cos_threshold) & (P >= 0)
               & (top_share >= config.projection_proportion_threshold))
    return ProjectionResult(P, M, A, fraction, is_full, top, top_proj)


def select_split_latents(f1_by_k: list[float], ranked_latents: list[int], tau: float = 0.03) -> list[int]:
    """Feature splitting: accept the top-k latents while F1 keeps improving by more than tau.
    k = 1 is always accepted (F1(1) > -inf). Returns the accepted latents (SAEBench counts them all;
    the paper reports len - 1)."""
    accepted = 0
    previous = -np.inf
    for k, f1 in enumerate(f1_by_k, start=1):
        if f1 > previous + tau:
            accepted, previous = k, f1
        else:
            break
    return list(ranked_latents[:accepted])


def absorbing_latent(top_latents: np.ndarray, split_latents: list[int]) -> int | None:
    """Where the word's absorber stands among its top latents (ranked by projection, or by attribution for the
    paper's metric): the first that is not a split latent; None when every top latent is a split latent. For full
    absorption and the paper metric this is the top latent; for partial absorption a split latent (the main latent)
    may rank above it."""
    split = {int(latent) for latent in split_latents}
    for position, latent in enumerate(top_latents):
        if int(latent) not in split:
            return position
    return None
