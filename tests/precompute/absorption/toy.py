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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.synthetic import ActivationGenerator, FeatureDictionary, train_toy_sae
from sae_lens.synthetic.hierarchy import HierarchyNode, hierarchy_modifier

from precompute.absorption.projection import ProjectionMetricConfig, ProjectionResult, projection_absorption


@dataclass(frozen=True)
class ToySpec:
    """The toy world: one parent with mutually exclusive children, plus independent filler features."""

    num_features: int = 24
    d_model: int = 48
    parent_index: int = 0
    child_indices: tuple[int, ...] = (1, 2, 3)
    parent_prob: float = 0.25
    child_prob: float = 0.2  # each child's draw before hierarchy gating and mutual exclusion
    filler_prob: float = 0.06
    magnitude_std: float = 0.1  # firing magnitudes ~ N(1, std), relu'd

    @property
    def child_marginal_prob(self) -> float:
        """P(a given child fires) under the hierarchy: the parent fires, at least one child draw
        succeeds, and this child wins the (uniform) mutual-exclusion tie-break."""
        k = len(self.child_indices)
        return self.parent_prob * (1.0 - (1.0 - self.child_prob) ** k) / k


@dataclass(frozen=True)
class SAESpec:
    """A ReLU SAE with an L1 penalty; width defaults to the number of features."""

    l1_coefficient: float = 0.3
    d_sae: int | None = None  # None: spec.num_features
    training_samples: int = 1024 * 1000
    batch_size: int = 1024
    lr: float = 3e-3


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


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting. The matrices here are tiny: on a
    shared 2-core machine with another busy process, two intra-op threads made 100 training steps
    take 11 s instead of 0.2 s (threads spin-waiting on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_feature_dict(spec: ToySpec, seed: int = 0) -> FeatureDictionary:
    """Near-orthogonal unit directions (sae-lens's default orthogonalising initialiser: 200 Adam
    steps on the pairwise dot products), no bias."""
    with single_thread():
        return FeatureDictionary(spec.num_features, spec.d_model, seed=seed)


def hierarchy_root(spec: ToySpec) -> HierarchyNode:
    children = [HierarchyNode(feature_index=i, feature_id=f"child{n}") for n, i in enumerate(spec.child_indices)]
    return HierarchyNode(feature_index=spec.parent_index, children=children,
                         mutually_exclusive_children=True, feature_id="parent")


def firing_probabilities(spec: ToySpec, hierarchy: bool) -> torch.Tensor:
    """Raw per-feature firing probabilities. With the hierarchy the children get their pre-gating
    draw probability; in the control they get the hierarchy's marginal rate, so both worlds fire
    every feature equally often and differ only in the co-occurrence of parent and children."""
    probs = torch.full((spec.num_features,), spec.filler_prob)
    probs[spec.parent_index] = spec.parent_prob
    probs[list(spec.child_indices)] = spec.child_prob if hierarchy else spec.child_marginal_prob
    return probs


def build_generator(spec: ToySpec, hierarchy: bool) -> ActivationGenerator:
    modifier = hierarchy_modifier(hierarchy_root(spec)) if hierarchy else None
    return ActivationGenerator(spec.num_features, firing_probabilities(spec, hierarchy),
                               std_firing_magnitudes=spec.magnitude_std, mean_firing_magnitudes=1.0,
                               modify_activations=modifier)


def train_sae(feature_dict: FeatureDictionary, generator: ActivationGenerator, sae_spec: SAESpec,
              seed: int = 0) -> StandardTrainingSAE:
    """SAE init and the training stream both draw from torch's global RNG: seed it, and restore it."""
    d_sae = sae_spec.d_sae or feature_dict.num_features
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(
            d_in=feature_dict.hidden_dim, d_sae=d_sae, l1_coefficient=sae_spec.l1_coefficient))
        train_toy_sae(sae, feature_dict, generator, training_samples=sae_spec.training_samples,
                      batch_size=sae_spec.batch_size, lr=sae_spec.lr)
    sae.eval()
    return sae


def make_toy(spec: ToySpec = ToySpec(), hierarchy: bool = True, sae_spec: SAESpec = SAESpec(),
             seed: int = 0) -> ToyModel:
    """The same seed gives the same feature dictionary in the hierarchy and control worlds."""
    feature_dict = build_feature_dict(spec, seed)
    generator = build_generator(spec, hierarchy)
    sae = train_sae(feature_dict, generator, sae_spec, seed)
    return ToyModel(spec, hierarchy, feature_dict, generator, sae)


@torch.no_grad()
def sample(feature_dict: FeatureDictionary, generator: ActivationGenerator, n: int,
           seed: int = 12345) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [n, d_model], feature_acts [n, num_features]) from a seeded, isolated RNG."""
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        feature_acts = generator.sample(n)
        return feature_dict(feature_acts), feature_acts


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
