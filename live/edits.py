"""Edits on the live page (`?edit=POS:LATENT:VALUE`): set one SAE latent's activation at one token (or at every token,
`*`), splice the edited reconstruction into the model at the SAE's hook, and compare the next-token prediction before
and after.

The splice keeps the SAE's error term: the hook's activation x becomes x + decode(z') - decode(z), with z the SAE's
codes of x and z' the edited codes. So an empty edit (z' = z) leaves the model exactly as it was, and an edit changes
the residual stream by exactly what the edited latents write.

Streamlit-free; torch is imported inside the functions that run the model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.params import shown as shown_value

MAX_EDITS = 16  # edits per run
MAX_WATCHED = 8  # tokens named by `watch=`
MAX_VALUE = 1_000.0  # |activation| an edit may set
MAX_SCALE = 100.0  # `xK` may scale an activation by at most this
TOP_K = 10  # next tokens shown before and after
EDIT = re.compile(r"^\s*(?P<pos>\*|[0-9]+)\s*:\s*(?P<latent>[0-9]+)\s*:\s*(?P<value>x?[-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*$",
                  re.IGNORECASE)


class EditError(ValueError):
    """An edit the page cannot run: the message says which and why, for the person reading the page."""


@dataclass(frozen=True)
class Edit:
    position: int | None  # token position in the text (0 = its first token); None: every position
    latent: int
    value: float  # the activation to set, or the factor to scale it by (scale)
    scale: bool = False

    @property
    def spec(self) -> str:
        """The edit as the URL writes it."""
        where = "*" if self.position is None else str(self.position)
        return f"{where}:{self.latent}:{'x' if self.scale else ''}{self.value:g}"

    def describe(self, tokens: list[str] | None = None) -> str:
        where = "every token" if self.position is None else (
            f"token {self.position}" + (f" ({tokens[self.position]!r})" if tokens else ""))
        what = "ablated" if (not self.scale and self.value == 0) else (
            f"scaled ×{self.value:g}" if self.scale else f"set to {self.value:g}")
        return f"latent {self.latent} {what} at {where}"


def parse_edits(raw: list[str], n_tokens: int, d_sae: int) -> tuple[Edit, ...]:
    """`edit=` values (each one edit, or several joined by `,`) checked against the text's tokens and the SAE's
    latents. Raises EditError with a message naming the bad edit."""
    specs = [part for value in raw for part in value.split(",") if part.strip()]
    if len(specs) > MAX_EDITS:
        raise EditError(f"{len(specs)} edits; the live page runs at most {MAX_EDITS}.")
    return tuple(parse_edit(spec, n_tokens, d_sae) for spec in specs)


def parse_edit(spec: str, n_tokens: int, d_sae: int) -> Edit:
    shown = shown_value(spec.strip())  # a message never echoes control characters
    match = EDIT.match(spec)
    if match is None:
        raise EditError(f"`edit={shown}` is not POSITION:LATENT:VALUE (for example `3:2174:0` to ablate latent 2174 "
                        "at token 3, `*:409:x2` to double latent 409 at every token).")
    position = None if match.group("pos") == "*" else int(match.group("pos"))
    if position is not None and position >= n_tokens:
        raise EditError(f"`edit={shown}`: the text has tokens 0–{n_tokens - 1}.")
    latent = int(match.group("latent"))
    if latent >= d_sae:
        raise EditError(f"`edit={shown}`: the SAE has latents 0–{d_sae - 1:,}.")
    value_text = match.group("value")
    scale = value_text.lower().startswith("x")
    value = float(value_text[1:] if scale else value_text)
    limit = MAX_SCALE if scale else MAX_VALUE
    if not math.isfinite(value) or abs(value) > limit or (scale and value < 0):
        raise EditError(f"`edit={shown}`: " + (f"a scale is between x0 and x{MAX_SCALE:g}." if scale else
                                               f"an activation is between −{MAX_VALUE:g} and {MAX_VALUE:g}."))
    return Edit(position, latent, value, scale)


def edited_codes(codes, edits: tuple[Edit, ...]):
    """codes [n, d_sae] (torch) with the edits applied, in order (a later edit of the same cell wins)."""
    out = codes.clone()
    for edit in edits:
        rows = slice(None) if edit.position is None else slice(edit.position, edit.position + 1)
        column = out[rows, edit.latent]
        out[rows, edit.latent] = column * edit.value if edit.scale else column.new_full(column.shape, edit.value)
    return out


@dataclass(frozen=True)
class NextTokens:
    ids: tuple[int, ...]
    probs: tuple[float, ...]
    logits: tuple[float, ...]


@dataclass(frozen=True)
class EditResult:
    position: int  # where the next token is predicted (a token position in the text)
    before: NextTokens
    after: NextTokens
    max_logit_change: float  # over the vocabulary, at `position`
    # the same tokens' logits in the other run: before's top tokens after the edit, and after's top tokens before it
    before_tokens_after: tuple[float, ...]
    after_tokens_before: tuple[float, ...]
    # the tokens the URL names (`watch=`): their logits at `position` before and after
    watched_before: tuple[float, ...] = ()
    watched_after: tuple[float, ...] = ()
    # what the edits wrote into the residual stream at the hook: token position -> [d_model] (positions it changed)
    resid_change: dict[int, np.ndarray] | None = None

    def probe_logit_change(self, position: int, weight: np.ndarray) -> float:
        """How the edits moved a linear probe's logit (weight · residual) at the hook, at `position`."""
        change = (self.resid_change or {}).get(position)
        return 0.0 if change is None else float(change @ weight)


def top_tokens(logits: np.ndarray, k: int = TOP_K) -> NextTokens:
    """logits [d_vocab] -> the k most likely next tokens with their probabilities."""
    order = np.argsort(-logits, kind="stable")[:k]
    shifted = logits - logits.max()
    probs = np.exp(shifted) / np.exp(shifted).sum()
    return NextTokens(tuple(int(i) for i in order), tuple(float(probs[i]) for i in order),
                      tuple(float(logits[i]) for i in order))


def splice_hook(sae: Any, lead: int, edits: tuple[Edit, ...], record: list | None = None):
    """A TransformerLens hook that replaces the hook's activation of the text tokens (after `lead` context tokens)
    by x + decode(z') - decode(z); `record` (a list) receives that change, [n, d_model]."""
    def hook(resid, hook):  # resid [1, n_ctx, d_model]
        x = resid[0, lead:].to(sae.dtype)  # [n, d_model]
        codes = sae.encode(x)  # [n, d_sae]
        delta = sae.decode(edited_codes(codes, edits)) - sae.decode(codes)  # [n, d_model]: zero without edits
        if record is not None:
            record.append(delta.detach().float().cpu().numpy())
        resid[0, lead:] = resid[0, lead:] + delta.to(resid.dtype)
        return resid
    return hook


def model_logits(model, sae: Any, hook_name: str, token_ids: list[int], context_id: int | None,
                 edits: tuple[Edit, ...] | None, record: list | None = None, position: int | None = None):
    """[n_tokens, d_vocab] logits of the text's tokens, or [d_vocab] at the text's `position` alone (the unembedding
    of one row: a 512-token text spent 70 % of an edit on logits it never showed). With `edits` (even empty) the SAE
    splice runs at the hook (and `record` receives the residual change it wrote)."""
    import torch

    lead = [] if context_id is None else [context_id]
    tokens = torch.tensor([lead + list(token_ids)], dtype=torch.long)  # [1, n_ctx]
    from live.inference import forward_pass

    hooks = [] if edits is None else [(hook_name, splice_hook(sae, len(lead), edits, record))]
    with forward_pass(model, sae), torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        if position is None:
            return model(tokens, prepend_bos=False)[0, len(lead):].float()  # [n_tokens, d_vocab]
        resid = model(tokens, prepend_bos=False, stop_at_layer=model.cfg.n_layers)  # [1, n_ctx, d_model]
        row = len(lead) + (position if position >= 0 else len(token_ids) + position)
        from precompute.absorption.activations import final_logits

        return final_logits(model, resid[0, row:row + 1])[0].float()  # [d_vocab]


def changed_rows(delta: np.ndarray) -> dict[int, np.ndarray]:
    """delta [n, d_model] -> the rows an edit changed, by position (a cached result keeps only those)."""
    return {int(i): delta[i].copy() for i in np.flatnonzero(np.abs(delta).max(axis=1) > 0)}


def run_edits(model, sae: Any, hook_name: str, token_ids: list[int], context_id: int | None, edits: tuple[Edit, ...],
              position: int, watched: tuple[int, ...] = ()) -> EditResult:
    """The next-token prediction at `position` of the text, as the model makes it and with the edits spliced in, and
    the logits of the `watched` token ids there."""
    record: list = []
    before = model_logits(model, sae, hook_name, token_ids, context_id, None, position=position).numpy()
    after = model_logits(model, sae, hook_name, token_ids, context_id, edits, record, position=position).numpy()
    top_before, top_after = top_tokens(before), top_tokens(after)
    return EditResult(position, top_before, top_after, float(np.abs(after - before).max()),
                      tuple(float(after[i]) for i in top_before.ids), tuple(float(before[i]) for i in top_after.ids),
                      tuple(float(before[i]) for i in watched), tuple(float(after[i]) for i in watched),
                      changed_rows(record[0]) if record else None)
