"""Toy worlds of known features for feature absorption, built from sae-lens's synthetic toolkit.

A `FeatureDictionary` holds near-orthogonal unit feature directions; an `ActivationGenerator` samples sparse
feature activations; `hierarchy_modifier(HierarchyNode(...))` imposes the hierarchy (a child fires only when its
parent fires, and a parent's children are mutually exclusive); `train_toy_sae` trains a small ReLU/L1
("standard") SAE on the resulting dense activations.

The control variant uses the same feature dictionary and the same marginal firing rates, but no hierarchy: the
parents and the children fire independently.

Shared by the tests' toy SAEs (tests/precompute/absorption/toy.py) and the demo's browsable toy run
(precompute/toy/hierarchy.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.synthetic import ActivationGenerator, FeatureDictionary, train_toy_sae
from sae_lens.synthetic.hierarchy import HierarchyNode, hierarchy_modifier

Group = tuple[int, tuple[int, ...]]  # (parent feature index, its mutually exclusive children's indices)


@dataclass(frozen=True)
class ToySpec:
    """The toy world: parents with mutually exclusive children, every other feature an independent filler."""

    num_features: int = 24
    d_model: int = 48
    groups: tuple[Group, ...] = ((0, (1, 2, 3)),)
    parent_prob: float = 0.25
    child_prob: float = 0.2  # each child's draw before hierarchy gating and mutual exclusion
    filler_prob: float = 0.06
    magnitude_std: float = 0.1  # firing magnitudes ~ N(1, std), relu'd

    @property
    def parent_index(self) -> int:
        """The first group's parent (the tests' one-parent world)."""
        return self.groups[0][0]

    @property
    def child_indices(self) -> tuple[int, ...]:
        return self.groups[0][1]

    def child_marginal_prob_of(self, n_children: int) -> float:
        """P(a given child fires) under the hierarchy: the parent fires, at least one child draw succeeds, and
        this child wins the (uniform) mutual-exclusion tie-break."""
        return self.parent_prob * (1.0 - (1.0 - self.child_prob) ** n_children) / n_children

    @property
    def child_marginal_prob(self) -> float:
        return self.child_marginal_prob_of(len(self.child_indices))


@dataclass(frozen=True)
class SAESpec:
    """A ReLU SAE with an L1 penalty; width defaults to the number of features."""

    l1_coefficient: float = 0.3
    d_sae: int | None = None  # None: spec.num_features
    training_samples: int = 1024 * 1000
    batch_size: int = 1024
    lr: float = 3e-3


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting. The matrices here are tiny: on a shared 2-core
    machine with another busy process, two intra-op threads made 100 training steps take 11 s instead of 0.2 s
    (threads spin-waiting on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_feature_dict(spec: ToySpec, seed: int = 0) -> FeatureDictionary:
    """Near-orthogonal unit directions (sae-lens's default orthogonalising initialiser: 200 Adam steps on the
    pairwise dot products), no bias."""
    with single_thread():
        return FeatureDictionary(spec.num_features, spec.d_model, seed=seed)


def hierarchy_roots(spec: ToySpec) -> list[HierarchyNode]:
    roots = []
    for n, (parent, children) in enumerate(spec.groups):
        nodes = [HierarchyNode(feature_index=i, feature_id=f"child{n}.{m}") for m, i in enumerate(children)]
        roots.append(HierarchyNode(feature_index=parent, children=nodes, mutually_exclusive_children=True,
                                   feature_id=f"parent{n}" if n else "parent"))
    return roots


def firing_probabilities(spec: ToySpec, hierarchy: bool) -> torch.Tensor:
    """Raw per-feature firing probabilities. With the hierarchy the children get their pre-gating draw
    probability; in the control they get the hierarchy's marginal rate, so both worlds fire every feature equally
    often and differ only in the co-occurrence of parents and children."""
    probs = torch.full((spec.num_features,), spec.filler_prob)
    for parent, children in spec.groups:
        probs[parent] = spec.parent_prob
        probs[list(children)] = spec.child_prob if hierarchy else spec.child_marginal_prob_of(len(children))
    return probs


def build_generator(spec: ToySpec, hierarchy: bool) -> ActivationGenerator:
    modifier = hierarchy_modifier(hierarchy_roots(spec)) if hierarchy else None
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


@torch.no_grad()
def sample(feature_dict: FeatureDictionary, generator: ActivationGenerator, n: int,
           seed: int = 12345) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations [n, d_model], feature_acts [n, num_features]) from a seeded, isolated RNG."""
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        feature_acts = generator.sample(n)
        return feature_dict(feature_acts), feature_acts
