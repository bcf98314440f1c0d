"""SAE codes of the task words, kept sparse.

TopK and JumpReLU SAEs fire a few dozen latents per word, so the codes of every word are a CSR matrix
[n_words, d_sae] of ~L0 values per row instead of a dense one (47k words x 1M latents would be 188 GB in
float32). Every consumer reads rows (`codes[words]`, still CSR), a few columns (`columns`) or one value
per row (`gather`); the helpers also take dense arrays, which the tests use to check both paths agree.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from precompute.util.blocks import row_blocks

Codes = np.ndarray | sp.csr_matrix


def encode_words(sae, acts: np.ndarray, max_batch: int = 4096) -> sp.csr_matrix:
    """[n_words, d_sae] CSR float32 codes of acts [n_words, d_model], encoded a block of words at a time
    (each block's dense codes bounded over d_sae, then made sparse)."""
    import torch  # here, not at import: the live page reads the projection metric (this module) without torch

    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    d_sae = sae.W_dec.shape[0]
    with torch.no_grad():
        parts = [sp.csr_matrix(sae.encode(torch.from_numpy(acts[rows]).to(device, dtype)).float().cpu().numpy())
                 for rows in row_blocks(len(acts), d_sae, cap=max_batch)]  # each [block, d_sae] dense, then CSR
    if not parts:
        return sp.csr_matrix((0, d_sae), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def as_csr(codes: Codes) -> sp.csr_matrix:
    return codes if sp.issparse(codes) else sp.csr_matrix(codes)


def columns(codes: Codes, latents) -> np.ndarray:
    """[n, len(latents)] dense, from dense or CSR codes."""
    picked = codes[:, list(latents)]
    return picked.toarray() if sp.issparse(picked) else picked


def column(codes: Codes, latent: int) -> np.ndarray:
    """[n] one latent's codes."""
    return columns(codes, [latent])[:, 0]


def gather(codes: Codes, latents: np.ndarray) -> np.ndarray:
    """[n, k] codes[i, latents[i, j]] (np.take_along_axis for dense or CSR codes)."""
    if not sp.issparse(codes):
        return np.take_along_axis(codes, latents, axis=1)
    n, k = latents.shape
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=codes.dtype)
    rows = np.repeat(np.arange(n), k)
    return np.asarray(codes[rows, latents.reshape(-1)]).reshape(n, k)


def candidate_latents(codes: sp.csr_matrix, n_zero: int, always: list[int] | np.ndarray = ()) -> np.ndarray:
    """Sorted latents that a row-wise stable top-n_zero over these codes (or any function of them that is 0 where
    a code is 0) can pick: every latent stored in some row, the first n_zero + (most stored in a row) latents
    (where a row's lowest-index zeros are, which a stable sort ranks before negatives), and `always`."""
    per_row = int(np.diff(codes.indptr).max()) if codes.shape[0] else 0
    first = np.arange(min(n_zero + per_row, codes.shape[1]))
    return np.union1d(np.union1d(codes.indices, first), np.asarray(always, dtype=np.int64)).astype(np.int64)
