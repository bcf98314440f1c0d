"""Steering on the live page (`?steer=LATENT:ALPHA`): add α × the latent's decoder row to the residual stream at the
SAE's hook, at every position of the text and of every generated token, and let the model continue the text.

α is in the latent's own units: the decoder row as trained, so `steer=409:12` writes what latent 409 writes when its
code is 12 (the dashboards' activations are in the same units), at every token. The page generates the same number of
tokens with and without the steering, from the same text: greedily by default, so a shared link regenerates the same
continuation; with `temp` > 0 tokens are sampled, from a generator seeded by `seed`.

Streamlit-free; torch is imported inside the functions that run the model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from backend.params import shown as shown_value

MAX_STEERS = 4  # latents steered at once
MAX_ALPHA = 1_000.0  # |α|: the same bound as an edit's value
MAX_NEW_TOKENS = 40
DEFAULT_NEW_TOKENS = 20
MAX_TEMPERATURE = 2.0
STEER = re.compile(r"^\s*(?P<latent>[0-9]+)\s*:\s*(?P<alpha>[-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*$", re.IGNORECASE)


class SteerError(ValueError):
    """A steering request the page cannot run: the message says which part and why."""


@dataclass(frozen=True)
class Steer:
    latent: int
    alpha: float

    @property
    def spec(self) -> str:
        return f"{self.latent}:{self.alpha:g}"

    def describe(self) -> str:
        return f"latent {self.latent} × {self.alpha:g}"


@dataclass(frozen=True)
class Generation:
    """How the text is continued: `new_tokens` tokens, greedy at temperature 0, else sampled with `seed`."""

    new_tokens: int = DEFAULT_NEW_TOKENS
    temperature: float = 0.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def parse_steers(raw: list[str], d_sae: int) -> tuple[Steer, ...]:
    """`steer=` values (each one LATENT:ALPHA, or several joined by `,`), checked against the SAE's latents."""
    specs = [part for value in raw for part in value.split(",") if part.strip()]
    if not specs:
        raise SteerError("`steer` names a latent and a strength, LATENT:ALPHA (for example `steer=409:12`).")
    if len(specs) > MAX_STEERS:
        raise SteerError(f"{len(specs)} steering latents; the live page steers with at most {MAX_STEERS} at once.")
    return tuple(parse_steer(spec, d_sae) for spec in specs)


def parse_steer(spec: str, d_sae: int) -> Steer:
    shown = printable(spec)  # a message never echoes control characters
    match = STEER.match(spec)
    if match is None:
        raise SteerError(f"`steer={shown}` is not LATENT:ALPHA (for example `steer=409:12` adds 12 × latent 409's "
                         "decoder row at every token; a negative α subtracts it).")
    latent = int(match.group("latent"))
    if latent >= d_sae:
        raise SteerError(f"`steer={shown}`: the SAE has latents 0–{d_sae - 1:,}.")
    alpha = float(match.group("alpha"))
    if not math.isfinite(alpha) or abs(alpha) > MAX_ALPHA:
        raise SteerError(f"`steer={shown}`: α is between −{MAX_ALPHA:g} and {MAX_ALPHA:g}.")
    return Steer(latent, alpha)


def parse_generation(new_tokens: str | None, temperature: str | None, seed: str | None) -> Generation:
    """`gen=` (tokens to generate), `temp=` and `seed=`; each absent one takes its default."""
    return Generation(new_tokens=bounded_int(new_tokens, "gen", 1, MAX_NEW_TOKENS, DEFAULT_NEW_TOKENS),
                      temperature=bounded_float(temperature, "temp", 0.0, MAX_TEMPERATURE),
                      seed=bounded_int(seed, "seed", 0, 2**31 - 1, 0))


def printable(raw: str) -> str:
    """A URL value for a message: stripped, control characters replaced, shortened (backend.params.shown)."""
    return shown_value(raw.strip())


def bounded_int(raw: str | None, key: str, low: int, high: int, default: int) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise SteerError(f"`{key}={printable(raw)}` is not a whole number from {low} to {high:,}.")
    return int(text)


def bounded_float(raw: str | None, key: str, low: float, high: float) -> float:
    if raw is None:
        return low
    text = raw.strip()
    value = float(text) if re.fullmatch(r"[0-9]*\.?[0-9]+", text, re.ASCII) else math.nan
    if not low <= value <= high:  # nan fails too
        raise SteerError(f"`{key}={printable(text)}` is not a number from {low:g} to {high:g}.")
    return value


def steering_vector(sae: Any, steers: tuple[Steer, ...]):
    """[d_model] Σ α × W_dec[latent], the SAE's decoder rows as trained."""
    rows = sae.W_dec[[s.latent for s in steers]].detach().float()  # [n, d_model]
    alphas = rows.new_tensor([s.alpha for s in steers])  # [n]
    return alphas @ rows


def add_hook(vector):
    """A TransformerLens hook adding `vector` [d_model] at every position it sees: with the key-value cache those
    are the text's positions first, then each new token's once."""
    def hook(resid, hook):  # resid [batch, pos, d_model]
        return resid + vector.to(resid.dtype)
    return hook


def continue_text(model, token_ids: list[int], context_id: int | None, generation: Generation,
                  hook_name: str | None = None, vector=None) -> tuple[int, ...]:
    """The new token ids after [context token] + text, steered by `vector` at `hook_name` when given."""
    import torch

    from live.inference import forward_pass

    lead = [] if context_id is None else [context_id]
    tokens = torch.tensor([lead + list(token_ids)], dtype=torch.long)  # [1, n_ctx]
    hooks = [] if vector is None else [(hook_name, add_hook(vector))]
    has_eos = getattr(model.tokenizer, "eos_token_id", None) is not None  # stop at the end of a document, if known
    with forward_pass(model), torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        if not generation.greedy:
            torch.manual_seed(generation.seed)  # generate samples from torch's global generator
        out = model.generate(tokens, max_new_tokens=generation.new_tokens, do_sample=not generation.greedy,
                             temperature=generation.temperature if not generation.greedy else 1.0,
                             prepend_bos=False, stop_at_eos=has_eos, verbose=False, use_past_kv_cache=True,
                             return_type="tokens")
    return tuple(int(i) for i in out[0, tokens.shape[1]:])


def generate(model, sae: Any, hook_name: str, token_ids: list[int], context_id: int | None,
             steers: tuple[Steer, ...], generation: Generation) -> tuple[tuple[int, ...], float]:
    """One continuation (steered when `steers` is not empty) and its seconds: the page caches the plain one apart, so
    a new α costs one generation."""
    import time

    start = time.perf_counter()
    vector = steering_vector(sae, steers) if steers else None
    tokens = continue_text(model, token_ids, context_id, generation, hook_name if steers else None, vector)
    return tokens, time.perf_counter() - start


@dataclass(frozen=True)
class SteerResult:
    plain: tuple[int, ...]  # the continuation without steering
    steered: tuple[int, ...]
    seconds: float  # both generations


def run_steering(model, sae: Any, hook_name: str, token_ids: list[int], context_id: int | None,
                 steers: tuple[Steer, ...], generation: Generation) -> SteerResult:
    """Both continuations, plain and steered (the page caches them apart through `generate`)."""
    plain, plain_s = generate(model, sae, hook_name, token_ids, context_id, (), generation)
    steered, steered_s = generate(model, sae, hook_name, token_ids, context_id, steers, generation)
    return SteerResult(plain, steered, plain_s + steered_s)
