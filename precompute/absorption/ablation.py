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
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from precompute.absorption.activations import expanded, final_logits, prefix_cache
from precompute.absorption.codes import Codes, columns, gather
from precompute.loading.sae import resume_layer


@dataclass(frozen=True)
class AblationMetricConfig:
    max_candidates: int = 200  # per letter, a sample of whole prefix groups (random sets of words); rates scaled by n / 200
    n_alpha_steps: int = 6  # alpha = i / n for i = 0..n-1
    attribution_gap: float = 1.0  # |top| - |second| attribution needed for absorption
    min_probe_cos: float = 0.025  # the top latent's decoder cosine with the probe
    inactive_eps: float = 1e-8  # split latents must be below this at the word
    top_k_latents: int = 10  # latents kept per word for display
    batch_size: int = 32  # candidates per forward/backward (times n_alpha_steps rows; was 8, bench/ablation_speed.py)
    seed: int = 42


def letter_metric(logits: torch.Tensor, letter_ids: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """[batch] logit of the correct letter minus the mean logit of the other 25 (one token form)."""
    letters = logits[:, letter_ids]  # [batch, 26]
    own = letters.gather(1, correct[:, None])[:, 0]
    others = (letters.sum(1) - own) / (letters.shape[1] - 1)
    return own - others


def ablation_attributions(model: HookedTransformer, sae, hook_name: str, prefix_ids: list[int], suffixes: torch.Tensor,
                          correct: torch.Tensor, letter_ids: list[int], config: AblationMetricConfig,
                          cache: TransformerLensKeyValueCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """suffixes [b, t] token ids (the word first, then the template tail) after a shared prefix (`cache`: its keys
    and values, computed here when not given); correct [b] letter index. Returns (attributions [b, d_sae], codes at
    the word [b, d_sae]).

    At a residual-stream hook the model runs to the hook once per word, and only the layers after it run for the
    n_alpha_steps rows, with the unembedding of the 26 answers at the last token alone (the metric reads nothing
    else): the same attributions as spliced_attributions, which runs the whole model per step with its full logits,
    to float rounding (tests/precompute/absorption/test_ablation.py), several times faster (bench/ablation_speed.py)."""
    layer = resume_layer(hook_name, model.cfg.n_layers)
    if layer is None:
        return spliced_attributions(model, sae, hook_name, prefix_ids, suffixes, correct, letter_ids, config)
    steps = config.n_alpha_steps
    b = suffixes.shape[0]
    device = model.cfg.device
    tokens = suffixes.to(device)  # [b, t]
    if cache is None and prefix_ids:
        cache = prefix_cache(model, prefix_ids, stop_at_layer=None)
    ones = torch.ones_like(tokens)
    with torch.no_grad():
        resid = model(tokens, past_kv_cache=expanded(cache, b) if cache else None, attention_mask=ones,
                      stop_at_layer=layer)  # [b, t, d_model] at the hook
        word = resid[:, 0].to(sae.W_dec.dtype)  # [b, d_model]
        codes = sae.encode(word)  # [b, d_sae]
        error = word - sae.decode(codes)
    keep = 1.0 - torch.arange(steps, dtype=codes.dtype, device=device) / steps  # [steps]
    codes_steps = codes.repeat_interleave(steps, dim=0)  # [b * steps, d_sae]
    keep_rows = keep.repeat(b)[:, None]  # [b * steps, 1]
    rows_cache = expanded(cache, b * steps) if cache else None
    mask = ones.repeat_interleave(steps, dim=0)
    if rows_cache is not None:
        mask = rows_cache.append_attention_mask(mask)  # the prefix's positions too (frozen: nothing stored)
    answers = torch.tensor(letter_ids, device=device)
    with torch.enable_grad():
        scaled = (codes_steps * keep_rows).requires_grad_(True)
        patched = sae.decode(scaled) + error.repeat_interleave(steps, dim=0) * keep_rows  # [b * steps, d_model]
        rest = resid[:, 1:].repeat_interleave(steps, dim=0)  # [b * steps, t - 1, d_model]
        spliced = torch.cat([patched[:, None].to(resid.dtype), rest], dim=1)
        out = model(spliced, start_at_layer=layer, stop_at_layer=model.cfg.n_layers, past_kv_cache=rows_cache,
                     attention_mask=mask)  # [b * steps, t, d_model]
        logits = final_logits(model, out[:, -1], answers)  # [b * steps, 26]
        metric = letter_metric(logits, torch.arange(len(letter_ids), device=device),
                               correct.to(device).repeat_interleave(steps))
        (grad,) = torch.autograd.grad(metric.sum(), scaled)
    attributions = (grad * (0.0 - codes_steps)).reshape(b, steps, -1).mean(dim=1)
    return attributions.detach().float().cpu().numpy(), codes.detach().float().cpu().numpy()


def spliced_attributions(model: HookedTransformer, sae, hook_name: str, prefix_ids: list[int], suffixes: torch.Tensor,
                          correct: torch.Tensor, letter_ids: list[int], config: AblationMetricConfig) -> tuple[np.ndarray, np.ndarray]:
    """ablation_attributions as first written, for any hook: the SAE spliced in at the hook and the whole model run
    for every alpha step with its full logits (the reference the resumed version is tested against)."""
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
