"""A short label for every latent that fired, from the dashboards pass's sparse codes: its top tokens by activation
mass (the sum of its activations over a token's occurrences) and the share of its whole mass they carry, e.g.
"'K…' words: Kosher, Kefir, Ketmie (41 %)". No explainer model is needed; latent_labels keeps room for one's text.

Vectorised over the (token x latent) sums the running-text statistics already built (token_stats.TokenCounts):
one transpose and one sort, no loop over latents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from contract.schema import LABEL_TOKENS
from precompute.pipeline.dashboards import rank_within_groups
from precompute.pipeline.token_stats import TokenCounts

SHARE_DECIMALS = 3
LABEL_SHOWN = 3  # tokens named in the label text (LABEL_TOKENS are stored)


@dataclass
class LatentTopTokens:
    """Per latent that fired, its top tokens by activation mass, flat and sorted by (latent, mass descending)."""

    latent: np.ndarray  # [n] int32: one entry per (latent, top token)
    token_id: np.ndarray  # [n] int32
    share: np.ndarray  # [n] float64: the token's share of the latent's total activation mass


def latent_top_tokens(counts: TokenCounts, n_top: int = LABEL_TOKENS) -> LatentTopTokens:
    """Each latent's n_top tokens by activation mass (ties: the lower token id first)."""
    by_latent = counts.sums.T.tocsr()  # [d_sae, n_vocab]
    latent = np.repeat(np.arange(by_latent.shape[0]), np.diff(by_latent.indptr))
    mass, token = by_latent.data, by_latent.indices
    total = np.asarray(by_latent.sum(axis=1)).reshape(-1)
    order = np.lexsort((token, -mass, latent))
    keep = order[rank_within_groups(latent[order]) < n_top]
    return LatentTopTokens(latent[keep].astype(np.int32), token[keep].astype(np.int32),
                           mass[keep] / np.maximum(total[latent[keep]], 1e-30))


def shown_token(text: str) -> str:
    """A token as a label names it: a word or number without its leading space; punctuation quoted (so the commas
    between names stay readable); a blank or control token by its repr."""
    stripped = text.strip()
    if not stripped or not stripped.isprintable():
        return repr(text)
    return stripped if any(c.isalnum() for c in stripped) else repr(stripped)


def label_text(tokens: Sequence[str], shares: Sequence[float]) -> str:
    """'Kosher, Kefir, Ketmie (41 %)' from the top tokens (most mass first): the first LABEL_SHOWN names, tokens
    named alike (' k' and 'k') counted once with their shares summed, prefixed "'K…' words: " when the names are
    words that all start with one letter (the first-letter latents this explorer is about)."""
    merged: dict[str, float] = {}
    for token, share in zip(tokens, shares):
        name = shown_token(token)
        merged[name] = merged.get(name, 0.0) + float(share)
    named = list(merged)[:LABEL_SHOWN]
    percent = round(100 * sum(merged[name] for name in named))
    initials = {name[0].upper() for name in named}
    is_letter_family = (len(named) > 1 and len(initials) == 1 and all(name.isalpha() for name in named)
                        and any(len(name) > 1 for name in named))
    prefix = f"'{initials.pop()}…' words: " if is_letter_family else ""
    return f"{prefix}{', '.join(named)} ({percent} %)"


def latent_labels_table(key: str, top: LatentTopTokens, vocab: Sequence[str]) -> pa.Table:
    """latent_labels rows for one SAE (sae_key: the writer numbers it), sorted by latent."""
    starts = np.r_[0, np.flatnonzero(np.diff(top.latent)) + 1] if len(top.latent) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(top.latent)].astype(np.int64)
    shares = np.round(top.share, SHARE_DECIMALS)
    texts = [vocab[t] if t < len(vocab) else f"#{t}" for t in top.token_id.tolist()]
    labels, ids, kept = [], [], []
    for start, end in zip(starts.tolist(), ends.tolist()):
        labels.append(label_text(texts[start:end], shares[start:end].tolist()))
        ids.append(top.token_id[start:end].tolist())
        kept.append(shares[start:end].tolist())
    return pa.table({
        "sae_key": [key] * len(labels),
        "latent": pa.array(top.latent[starts], type=pa.int32()),
        "label": pa.array(labels, type=pa.string()),
        "top_token_ids": pa.array(ids, type=pa.list_(pa.int32())),
        "top_token_shares": pa.array(kept, type=pa.list_(pa.float32())),
        "explanation": pa.nulls(len(labels), type=pa.string()),
        "explanation_source": pa.nulls(len(labels), type=pa.string()),
    })
