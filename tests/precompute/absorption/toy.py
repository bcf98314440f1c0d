"""Ground-truth toy models for feature absorption, built from sae-lens's synthetic toolkit.

A `FeatureDictionary` holds near-orthogonal unit feature directions; an `ActivationGenerator`
samples sparse feature activations; `hierarchy_modifier(HierarchyNode(...))` imposes the
hierarchy (a child fires only when the parent fires, and the children are mutually exclusive);
`train_toy_sae` trains a small ReLU/L1 ("standard") SAE on the resulting dense activations.

The control variant uses the same feature dictionary and the same marginal firing rates, but no
hierarchy: the parent and the children fire independently.

The classic result (Chanin et al., "A is for Absorption"): with the hierarchy and enough L1
pressure, the SAE learns a parent latent that is silent when a child fires, and child latents
whose decoders carry the parent direction (the parent is "absorbed" into the children).
`detect_absorption` runs the SAEBench projection metric with the TRUE parent direction as the
probe, so its per-sample flags can be scored against the ground truth (did a child fire?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sae_lens.saes.standard_sae import StandardTrainingSAE
from sae_lens.synthetic import ActivationGenerator, FeatureDictionary

from precompute.absorption.projection import ProjectionMetricConfig, ProjectionResult, projection_absorption

# The world itself lives in the package (the demo's toy run is built from it); re-exported for the tests.
from precompute.toy.world import (  # noqa: F401
    SAESpec,
    ToySpec,
    build_feature_dict,
    build_generator,
    firing_probabilities,
    hierarchy_roots,
    sample,
    single_thread,
    train_sae,
)


@dataclass
class ToyModel:
    spec: ToySpec
    hierarchy: bool
    feature_dict: FeatureDictionary
    generator: ActivationGenerator
    sae: StandardTrainingSAE


@dataclass
class ToyDetection:
    """The projection metric on the samples where the parent truly fires (the probe's true positives).

    A sample is *flagged* when the metric reports any absorption: absorption_fraction > 0 (partial or
    full, SAEBench's fraction with its 0.1 absorber-cosine gate) or is_full_absorption (split latent
    silent, top latent carries >= 40% of the probe projection). Partial absorption counts because an
    L1 SAE often leaves the parent latent weakly on when a child fires; with no absorber the fraction
    is 0 (A / P < 0.4), so parent-only samples stay unflagged.
    """

    parent_latent: int
    child_latents: list[int]  # per child, the latent whose encoder row is closest to that child
    sample_indices: np.ndarray  # [n_pos] rows of the batch where the parent fires
    child_fired: np.ndarray  # [n_pos] bool ground truth: some child fires (so the parent is absorbable)
    flagged: np.ndarray  # [n_pos] bool
    parent_latent_acts: np.ndarray  # [n_pos] the parent latent's code on these samples
    parent_decoder_cos: float  # cos(W_dec[parent_latent], parent direction)
    child_decoder_parent_cos: np.ndarray  # [n_children] cos(W_dec[child latent], parent direction)
    result: ProjectionResult = field(repr=False)

    @property
    def precision(self) -> float:
        flagged = int(self.flagged.sum())
        return float((self.flagged & self.child_fired).sum() / flagged) if flagged else 1.0

    @property
    def recall(self) -> float:
        positives = int(self.child_fired.sum())
        return float((self.flagged & self.child_fired).sum() / positives) if positives else 1.0

    @property
    def flagged_rate(self) -> float:
        return float(self.flagged.mean()) if self.flagged.size else 0.0

    @property
    def parent_latent_silence_ratio(self) -> float:
        """Mean parent-latent activation where a child fires / where only the parent fires."""
        on_child = self.parent_latent_acts[self.child_fired].mean()
        parent_only = self.parent_latent_acts[~self.child_fired].mean()
        return float(on_child / parent_only)


def make_toy(spec: ToySpec = ToySpec(), hierarchy: bool = True, sae_spec: SAESpec = SAESpec(),
             seed: int = 0) -> ToyModel:
    """The same seed gives the same feature dictionary in the hierarchy and control worlds."""
    feature_dict = build_feature_dict(spec, seed)
    generator = build_generator(spec, hierarchy)
    sae = train_sae(feature_dict, generator, sae_spec, seed)
    return ToyModel(spec, hierarchy, feature_dict, generator, sae)


def _cosines(rows: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """cos(rows[i], direction) for each row."""
    return (rows @ direction) / (rows.norm(dim=1) * direction.norm()).clamp(min=1e-12)


def closest_encoder_latent(sae: StandardTrainingSAE, direction: torch.Tensor) -> int:
    """The latent whose encoder row (column of W_enc) has the highest cosine with a direction."""
    return int(_cosines(sae.W_enc.detach().T, direction).argmax())


@torch.no_grad()
def detect_absorption(sae: StandardTrainingSAE, feature_dict: FeatureDictionary, activations: torch.Tensor,
                      feature_acts: torch.Tensor, parent_index: int, child_indices: Sequence[int],
                      config: ProjectionMetricConfig = ProjectionMetricConfig()) -> ToyDetection:
    """The projection metric with the true parent direction as the probe and the parent latent
    (highest encoder cosine with that direction) as the only split latent, on the samples where the
    parent truly fires. Ground truth per sample: some child fires."""
    directions = feature_dict.feature_vectors.detach()
    parent_direction = directions[parent_index]
    parent_latent = closest_encoder_latent(sae, parent_direction)
    child_latents = [closest_encoder_latent(sae, directions[c]) for c in child_indices]

    positives = (feature_acts[:, parent_index] > 0).nonzero().squeeze(1)
    acts = activations[positives]
    codes = sae.encode(acts)
    W_dec = sae.W_dec.detach()
    result = projection_absorption(acts.double().numpy(), codes.double().numpy(), parent_direction.double().numpy(),
                                   W_dec.double().numpy(), split_latents=[parent_latent], config=config)

    child_fired = (feature_acts[positives][:, list(child_indices)] > 0).any(dim=1).numpy()
    flagged = (result.absorption_fraction > 0) | result.is_full_absorption
    decoder_cos = _cosines(W_dec, parent_direction)
    return ToyDetection(
        parent_latent=parent_latent,
        child_latents=child_latents,
        sample_indices=positives.numpy(),
        child_fired=child_fired,
        flagged=flagged,
        parent_latent_acts=codes[:, parent_latent].double().numpy(),
        parent_decoder_cos=float(decoder_cos[parent_latent]),
        child_decoder_parent_cos=decoder_cos[child_latents].double().numpy(),
        result=result,
    )


def detect_on_toy(toy: ToyModel, n: int = 8000, seed: int = 12345,
                  sae: StandardTrainingSAE | None = None) -> ToyDetection:
    """detect_absorption on a fresh sample of the toy's world, with its own SAE or another one."""
    activations, feature_acts = sample(toy.feature_dict, toy.generator, n, seed)
    with single_thread():
        return detect_absorption(sae if sae is not None else toy.sae, toy.feature_dict, activations, feature_acts,
                                 toy.spec.parent_index, toy.spec.child_indices)
