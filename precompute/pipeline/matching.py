"""Cross-SAE matching: each latent's nearest decoder direction in every other SAE at the same hook.

Run after the dashboards: for every (model, hook) group in the database, each ordered pair of SAEs
without rows gets them, so adding one SAE to a sweep computes only the pairs that involve it.
SAEs not loaded by this run are reloaded from where the database says they came from.
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from precompute.loading.sae import SAESpec, load_sae
from precompute.storage import writer as db
from precompute.util.blocks import rows_per_block


def unit_decoder(sae) -> torch.Tensor:
    """[d_sae, d_in] decoder rows scaled to unit norm, float32."""
    return torch.nn.functional.normalize(sae.W_dec.detach().float().cpu(), dim=-1)


@torch.no_grad()
def best_matches(decoder: torch.Tensor, other: torch.Tensor, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `decoder` [n, d], the index and cosine of the closest row of `other` [m, d]
    (both unit-norm). A block of `chunk` rows at a time (default: as many as fit MAX_BLOCK_ELEMENTS), so peak
    memory is O(chunk * m), never O(n * m)."""
    chunk = chunk or rows_per_block(len(other))
    index, cosine = [], []
    for start in range(0, len(decoder), chunk):
        sims = decoder[start:start + chunk] @ other.T  # [chunk, m]
        best = sims.max(dim=1)
        index.append(best.indices.numpy().astype(np.int32))
        cosine.append(best.values.numpy().astype(np.float32))
    return np.concatenate(index), np.concatenate(cosine)


def matches_table(key: str, other_key: str, index: np.ndarray, cosine: np.ndarray) -> pa.Table:
    n = len(index)
    return pa.table({
        "sae_key": pa.array([key] * n), "latent": pa.array(np.arange(n, dtype=np.int32)),
        "other_sae_key": pa.array([other_key] * n), "other_latent": pa.array(index),
        "cosine": pa.array(np.round(cosine, 4)),
    })


def stored_spec(row: tuple) -> SAESpec:
    key, _, _, source, path, release, sae_id = row
    return SAESpec(key=key, path=Path(path)) if source == "local" else SAESpec(key=key, release=release, sae_id=sae_id)


def hook_groups(con) -> dict[tuple[str, str], list[tuple]]:
    groups: dict[tuple[str, str], list[tuple]] = {}
    for row in con.execute(db.SAES_FOR_MATCHING).fetchall():
        groups.setdefault((row[1], row[2]), []).append(row)
    return groups


def run_matching_stage(con, loaded: dict[str, object] | None = None, device: str = "cpu", log=print) -> int:
    """Fill `latent_matches` for every ordered SAE pair at the same hook that has no rows yet.
    `loaded`: SAEs already in memory by key. Returns the number of pairs computed."""
    loaded = dict(loaded or {})
    done = {tuple(row) for row in con.execute(db.MATCHED_PAIRS).fetchall()}
    computed = 0
    for (model_name, hook_name), rows in hook_groups(con).items():
        specs = {row[0]: row for row in rows}
        todo = [(a, b) for a, b in permutations(sorted(specs), 2) if (a, b) not in done]
        if not todo:
            continue
        decoders: dict[str, torch.Tensor] = {}
        for key in sorted({k for pair in todo for k in pair}):
            try:
                sae = loaded[key] if key in loaded else load_sae(stored_spec(specs[key]), device=device)
            except Exception as error:  # a moved folder or an unreachable hub: skip its pairs, say so
                log(f"matching: cannot load {key} ({error}); its pairs are skipped")
                continue
            decoders[key] = unit_decoder(sae)
        con.execute("BEGIN TRANSACTION")
        for a, b in todo:
            if a in decoders and b in decoders:
                index, cosine = best_matches(decoders[a], decoders[b])
                db.insert_arrow(con, "latent_matches", matches_table(a, b, index, cosine))
                computed += 1
        con.execute("COMMIT")
        log(f"matching {model_name} {hook_name}: {len(todo)} SAE pairs")
    return computed
