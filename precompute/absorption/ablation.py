"""The paper's metric: integrated-gradients ablation of SAE latents at the word position.

For a candidate word (the probe knows its letter, the split latents are silent), splice the SAE in at
the hook with its error term; at the word position only, scale every latent and the error term by
(1 - alpha) for alpha = i / n_steps. The attribution of latent i is the mean over alpha of
dm/dz_i * (0 - z_i), where m = logit(correct letter) - mean logit(other 25 letters) at the last
position. The word is absorbed when the most negative attribution is clearly the largest
(|top| - |second| >= gap) and that latent's decoder points some way along the probe (cos >= 0.025).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformer_lens import HookedTransformer

from precompute.absorption.activations import expanded, prefix_cache
from precompute.absorption.codes import Codes, columns, gather


@dataclass(frozen=True)
class AblationMetricConfig:
    max_candidates: int = 200  # per letter, a sample of whole prefix groups (random sets of words); rates scaled by n / 200
    n_alpha_steps: int = 6  # alpha = i / n for i = 0..n-1
    attribution_gap: float = 1.0  # |top| - |second| attribution needed for absorption
    min_probe_cos: float = 0.025  # the top latent's decoder cosine with the probe
    inactive_eps: float = 1e-8  # split latents must be below this at the word
    top_k_latents: int = 10  # latents kept per word for display
    batch_size: int = 8  # candidates per forward/backward (times n_alpha_steps rows)
    seed: int = 42


def letter_metric(logits: torch.Tensor, letter_ids: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """[batch] logit of the correct letter minus the mean logit of the other 25 (one token form)."""
    letters = logits[:, letter_ids]  # [batch, 26]
    own = letters.gather(1, correct[:, None])[:, 0]
    others = (letters.sum(1) - own) / (letters.shape[1] - 1)
    return own - others


def ablation_attributions(model: HookedTransformer, sae, hook_name: str, prefix_ids: list[int], suffixes: torch.Tensor,
                          correct: torch.Tensor, letter_ids: list[int], config: AblationMetricConfig) -> tuple[np.ndarray, np.ndarray]:
    """suffixes [b, t] token ids (the word first, then the template tail) after a shared prefix;
    correct [b] letter index. Returns (attributions [b, d_sae], codes at the word [b, d_sae])."""
    steps = config.n_alpha_steps
    b = suffixes.shape[0]
    device = model.cfg.device
    tokens = suffixes.to(device).repeat_interleave(steps, dim=0)  # [b * steps, t]
    alphas = torch.arange(steps, dtype=torch.float32, device=device).repeat(b) / steps  # [b * steps]
    keep = (1.0 - alphas)[:, None]
    state: dict[str, torch.Tensor] = {}

    def splice(activation: torch.Tensor, hook) -> torch.Tensor:
        word = activation[:, 0].to(sae.W_dec.dtype)  # [b * steps, d_model]
        with torch.no_grad():
            codes = sae.encode(word)
            error = word - sae.decode(codes)
        scaled = (codes * keep).requires_grad_(True)
        state["codes"], state["scaled"] = codes, scaled
        patched = sae.decode(scaled) + error * keep
        return torch.cat([patched[:, None].to(activation.dtype), activation[:, 1:]], dim=1)

    cache = expanded(prefix_cache(model, prefix_ids, stop_at_layer=None), len(tokens)) if prefix_ids else None
    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, past_kv_cache=cache, attention_mask=torch.ones_like(tokens),
                                      fwd_hooks=[(hook_name, splice)])
        metric = letter_metric(logits[:, -1], torch.tensor(letter_ids, device=device),
                               correct.to(device).repeat_interleave(steps))
        (grad,) = torch.autograd.grad(metric.sum(), state["scaled"])
    codes = state["codes"]
    attributions = (grad * (0.0 - codes)).reshape(b, steps, -1).mean(dim=1)
    return attributions.detach().float().cpu().numpy(), codes.reshape(b, steps, -1)[:, 0].detach().float().cpu().numpy()


@dataclass
class PaperAbsorption:
    is_absorption: np.ndarray  # [n] bool
    top_latents: np.ndarray  # [n, k] most negative attribution first
    top_attributions: np.ndarray  # [n, k]
    top_acts: np.ndarray  # [n, k] those latents' activations at the word


def top_attributions(attributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """attributions [n, d_sae] -> (latents [n, k] most negative attribution first, ties by index; their
    attributions [n, k]). All the paper metric keeps of a word's attributions: taken per batch of words, so
    the [words, d_sae] attributions of every candidate never exist at once."""
    k = min(k, attributions.shape[1])
    order = np.argsort(attributions, axis=1, kind="stable")[:, :k]  # most negative first
    return order, np.take_along_axis(attributions, order, axis=1)


def paper_absorption(attributions: np.ndarray, codes: Codes, split_latents: list[int], decoder_cos: np.ndarray,
                     config: AblationMetricConfig = AblationMetricConfig()) -> PaperAbsorption:
    """attributions [n, d_sae], codes [n, d_sae] (dense or CSR); decoder_cos [d_sae] with this letter's probe direction."""
    order, top = top_attributions(attributions, config.top_k_latents)
    return paper_absorption_from_top(order, top, codes, split_latents, decoder_cos, config)


def paper_absorption_from_top(order: np.ndarray, top: np.ndarray, codes: Codes, split_latents: list[int],
                              decoder_cos: np.ndarray, config: AblationMetricConfig = AblationMetricConfig()) -> PaperAbsorption:
    """order, top [n, k] from top_attributions; codes [n, d_sae] (dense or CSR); decoder_cos [d_sae]."""
    second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
    split_silent = (np.abs(columns(codes, split_latents)) < config.inactive_eps).all(axis=1)
    is_absorption = (split_silent & (top[:, 0] <= 0) & (np.abs(top[:, 0]) - np.abs(second) >= config.attribution_gap)
                     & (decoder_cos[order[:, 0]] >= config.min_probe_cos))
    return PaperAbsorption(is_absorption, order, top, gather(codes, order))
