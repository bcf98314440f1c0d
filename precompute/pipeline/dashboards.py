"""Per-latent dashboards from one pass over the corpus, all latents at once.

The pass streams corpus rows through the model up to the hook (`stop_at_layer`), encodes with the
SAE and keeps only the sparse codes (token index, latent, activation): ~12 bytes per non-zero.
Everything per latent (top contexts, quantile samples, histogram, density) is then computed from
those codes with vectorised numpy, so cost is one model pass plus a sort, independent of d_sae.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from contract.schema import HIST_BINS, N_LOGITS, N_NEIGHBORS, activation_levels
from precompute.loading.packed import keep_freed_buffers, packed_linears
from precompute.loading.sae import hook_layer
from precompute.util.blocks import row_blocks, rows_per_block
from precompute.util.faults import crash_point


@dataclass(frozen=True)
class DashboardConfig:
    n_top: int = 20  # top-activating contexts per latent (at most one per corpus row)
    n_quantile_bins: int = 5  # equal-width activation bins over (0, max_act]
    n_per_quantile: int = 2  # random contexts sampled per bin
    context_left: int = 16  # tokens shown before the highlighted token
    context_right: int = 8  # and after it
    # The latents table stores these lists as fixed-length arrays: their lengths are the schema's
    hist_bins: ClassVar[int] = HIST_BINS
    n_logits: ClassVar[int] = N_LOGITS  # top and bottom logit tokens
    # nearest latents by decoder cosine, at most the schema's N_NEIGHBORS (padded up to it); 0 skips the O(d_sae^2)
    # cosines of a very wide SAE
    n_neighbors: int = N_NEIGHBORS
    n_token_latents: int = 4  # per vocabulary token in the corpus: its top latents by mean activation (token_latents)
    batch_size: int = 32  # corpus rows per model call
    first_position: int = 1  # position 0 is an attention sink (~6x residual norm): excluded
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.n_neighbors <= N_NEIGHBORS:
            raise ValueError(f"n_neighbors must be 0..{N_NEIGHBORS} (the latents table's array), not {self.n_neighbors}")


@dataclass
class SparseCodes:
    """All non-zero SAE activations over the pass, as parallel arrays."""

    token_index: np.ndarray  # [nnz] int64, = row * seq_len + pos
    latent: np.ndarray  # [nnz] int32
    value: np.ndarray  # [nnz] float32
    n_rows: int
    seq_len: int
    n_tokens: int  # tokens that count (positions >= first_position)


@dataclass
class ReconstructionStats:
    n_tokens: int
    explained_variance: float
    mse: float
    l0: float


@dataclass
class PassResult:
    codes: SparseCodes
    stats: ReconstructionStats


def hook_activations(model, hook_name: str, tokens: torch.Tensor, first_position: int) -> torch.Tensor:
    """Residual activations at the hook for positions >= first_position: [batch * pos, d_in]."""
    return hooks_activations(model, [hook_name], tokens, first_position)[hook_name]


def stop_layer(hook_names: list[str]) -> int | None:
    """The layer a pass to all these hooks stops at (None: the whole model, for a hook outside the blocks)."""
    layers = [hook_layer(name) for name in hook_names]
    return None if any(layer is None for layer in layers) else max(layers) + 1


def hooks_activations(model, hook_names: list[str], tokens: torch.Tensor, first_position: int) -> dict[str, torch.Tensor]:
    """One forward to the deepest of the hooks: each hook's activations for positions >= first_position,
    [batch * pos, d_in]."""
    wanted = sorted(set(hook_names))
    _, cache = model.run_with_cache(tokens, names_filter=wanted, stop_at_layer=stop_layer(wanted), prepend_bos=False)
    acts = {name: cache[name][:, first_position:, :] for name in wanted}  # [batch, pos, d_in]
    return {name: a.reshape(-1, a.shape[-1]) for name, a in acts.items()}


def encode_batch(model, sae, hook_name: str, tokens: torch.Tensor, first_position: int):
    """Residual activations at the hook for positions >= first_position, and their SAE codes."""
    flat = hook_activations(model, hook_name, tokens, first_position).to(sae.dtype)
    return flat, sae.encode(flat)  # [batch * pos, d_in], [batch * pos, d_sae]


@dataclass
class InputSums:
    """A block of activations in float64 and its sums: computed once for all the SAEs that read the block."""

    x64: torch.Tensor  # [tokens, d_in] float64
    total: torch.Tensor  # [d_in] float64
    sum_sq: float

    @classmethod
    def of(cls, x: torch.Tensor) -> InputSums:
        x64 = x.double()
        return cls(x64, x64.sum(0), float((x64**2).sum()))


class StatsAccumulator:
    """Explained variance = 1 - SSE / total variance, accumulated in float64 over the pass."""

    def __init__(self, d_in: int) -> None:
        self.n = 0
        self.sum = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = 0.0
        self.sse = 0.0
        self.nnz = 0

    def update(self, sums: InputSums, x_hat: torch.Tensor, nnz: int) -> None:
        """A block's input sums (shared by every SAE at the hook), its reconstruction and its non-zero codes."""
        self.n += sums.x64.shape[0]
        self.sum += sums.total
        self.sum_sq += sums.sum_sq
        self.sse += float(((sums.x64 - x_hat.double()) ** 2).sum())
        self.nnz += nnz

    def result(self) -> ReconstructionStats:
        total_var = self.sum_sq - float((self.sum**2).sum()) / self.n
        return ReconstructionStats(
            n_tokens=self.n,
            explained_variance=1.0 - self.sse / total_var,
            mse=self.sse / (self.n * self.sum.shape[0]),
            l0=self.nnz / self.n,
        )


class SparseCodeCollector:
    """Accumulates one SAE's sparse codes (corpus token index, latent, value) over the pass."""

    def __init__(self, sae, seq_len: int, first_position: int) -> None:
        self.sae = sae
        self.seq_len = seq_len
        self.first_position = first_position
        self.stats = StatsAccumulator(sae.cfg.d_in)
        self.sparse_decode: bool | None = None  # decode from sparse codes: unknown until the first block checks it
        self.index: list[np.ndarray] = []
        self.latent: list[np.ndarray] = []
        self.value: list[np.ndarray] = []

    def update(self, x: torch.Tensor, first_row: int, sums: dict[tuple, InputSums] | None = None) -> None:
        """x [batch * usable, d_in]: the model batch's activations, encoded a block of tokens at a time so the
        dense codes stay [block, d_sae] within MAX_BLOCK_ELEMENTS however wide the SAE (the model batch is not
        cut: one forward serves every SAE at the hook). `sums`: the blocks' float64 sums, shared with the other
        SAEs reading this x (filled here when missing)."""
        x = x.to(self.sae.dtype)
        sums = {} if sums is None else sums
        for block in row_blocks(len(x), self.sae.cfg.d_sae):
            key = (block.start, block.stop, x.dtype)  # SAEs at one hook in another dtype see another x
            if key not in sums:
                sums[key] = InputSums.of(x[block])
            self.update_block(x[block], first_row, block.start, sums[key])

    def update_block(self, x: torch.Tensor, first_row: int, first_token: int, sums: InputSums) -> None:
        codes = self.sae.encode(x)  # [block, d_sae]
        flat_idx, latent_idx = torch.nonzero(codes > 0, as_tuple=True)
        nonzero = codes[flat_idx, latent_idx]
        self.stats.update(sums, self.reconstruction(codes, flat_idx, latent_idx, nonzero), len(flat_idx))
        values = nonzero.float().cpu().numpy()
        flat_idx = flat_idx + first_token  # index over the model batch's tokens
        usable = self.seq_len - self.first_position
        # flat index over [batch, usable] -> corpus token index (row * seq_len + pos)
        row = first_row + torch.div(flat_idx, usable, rounding_mode="floor")
        pos = flat_idx % usable + self.first_position
        self.index.append((row * self.seq_len + pos).cpu().numpy().astype(np.int64))
        self.latent.append(latent_idx.cpu().numpy().astype(np.int32))
        self.value.append(values)

    def reconstruction(self, codes: torch.Tensor, rows: torch.Tensor, latents: torch.Tensor,
                       values: torch.Tensor) -> torch.Tensor:
        """sae.decode(codes) [block, d_in], from the sparse codes where that is cheaper (sparse_codes); the SAE's
        first block checks the sparse decode against the dense one, and an SAE whose decode cannot take a sparse
        tensor, or gives another reconstruction, keeps the dense decode."""
        sparse = sparse_codes(codes, rows, latents, values) if self.sparse_decode is not False else codes
        if sparse is codes:
            return self.sae.decode(codes)
        if self.sparse_decode is None:
            dense = self.sae.decode(codes)
            try:
                x_hat = self.sae.decode(sparse)
                scale = float(dense.abs().max()) or 1.0
                self.sparse_decode = x_hat.shape == dense.shape and bool(
                    torch.allclose(x_hat, dense, rtol=1e-4, atol=1e-5 * scale))
            except (RuntimeError, NotImplementedError, TypeError):
                self.sparse_decode = False
            return dense
        return self.sae.decode(sparse)

    def result(self, n_rows: int) -> PassResult:
        codes = SparseCodes(
            token_index=np.concatenate(self.index) if self.index else np.zeros(0, np.int64),
            latent=np.concatenate(self.latent) if self.latent else np.zeros(0, np.int32),
            value=np.concatenate(self.value) if self.value else np.zeros(0, np.float32),
            n_rows=n_rows,
            seq_len=self.seq_len,
            n_tokens=n_rows * (self.seq_len - self.first_position),
        )
        return PassResult(codes=codes, stats=self.stats.result())


@torch.no_grad()
def collect_sparse_codes_for_hooks(model, saes: list, hook_names: list[str], rows: np.ndarray, config: DashboardConfig,
                                   device: str = "cpu") -> list[PassResult]:
    """The single model pass for SAEs at any hooks of the model (`hook_names[i]`: saes[i]'s): each batch runs once, to
    the deepest hook, and every SAE encodes its hook's activations (SAEs at one hook share their float64 sums)."""
    n_rows, seq_len = rows.shape
    collectors = [SparseCodeCollector(sae, seq_len, config.first_position) for sae in saes]
    usable = seq_len - config.first_position
    hooks = sorted(set(hook_names), key=hook_names.index)
    progress = tqdm(total=n_rows * usable, desc=f"dashboards {', '.join(hooks)} ({len(saes)} SAEs)", unit="tok",
                    unit_scale=True)
    keep_freed_buffers()
    with packed_linears(model, *saes):
        for start in range(0, n_rows, config.batch_size):
            batch = torch.from_numpy(rows[start : start + config.batch_size]).long().to(device)
            acts = hooks_activations(model, hooks, batch, config.first_position)
            sums: dict[str, dict[tuple, InputSums]] = {name: {} for name in hooks}
            for collector, name in zip(collectors, hook_names):
                collector.update(acts[name], start, sums[name])
            progress.update(batch.shape[0] * usable)
            for name in hooks:  # only after a batch: a kill in the middle of the shared pass
                crash_point(f"model-pass:{name}")
    progress.close()
    return [collector.result(n_rows) for collector in collectors]


def sparse_codes(codes: torch.Tensor, rows: torch.Tensor, latents: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """codes [block, d_sae] as a sparse tensor (from its non-zeros, row-major) when that makes the decode cheaper:
    sae.decode multiplies a sparse tensor by W_dec (sae-lens's own sparse path, ~3x faster for a 4k-latent top-k SAE),
    the same reconstruction to float32 rounding. A dense SAE (many non-zeros a row) keeps the dense product."""
    if len(values) * SPARSE_DECODE_DENSITY >= codes.numel():
        return codes
    return torch.sparse_coo_tensor(torch.stack([rows, latents]), values, codes.shape, is_coalesced=True)


SPARSE_DECODE_DENSITY = 32  # decode sparsely below 1/32 non-zero (4k-k32: 1/128; a 1k JumpReLU at L0 115: 1/9)


def collect_sparse_codes(model, sae, hook_name: str, rows: np.ndarray, config: DashboardConfig,
                         device: str = "cpu") -> PassResult:
    """The single model pass for one SAE: sparse codes of every token, and reconstruction statistics."""
    return collect_sparse_codes_for_hooks(model, [sae], [hook_name], rows, config, device)[0]


@dataclass
class LatentStats:
    n_fired: np.ndarray  # [d_sae] int64
    density: np.ndarray  # [d_sae] float64
    max_act: np.ndarray  # [d_sae] float32
    mean_act: np.ndarray  # [d_sae] float32
    hist_counts: np.ndarray  # [d_sae, hist_bins] int64


def latent_stats(codes: SparseCodes, d_sae: int, hist_bins: int) -> LatentStats:
    n_fired = np.bincount(codes.latent, minlength=d_sae)
    sums = np.bincount(codes.latent, weights=codes.value, minlength=d_sae)
    max_act = latent_maxima(codes.latent, codes.value, d_sae)
    mean_act = np.divide(sums, n_fired, out=np.zeros(d_sae), where=n_fired > 0).astype(np.float32)
    # Bin b covers (b/B * max, (b+1)/B * max]; the max itself lands in the last bin.
    scale = np.where(max_act > 0, max_act, 1.0)[codes.latent]
    bins = np.clip(np.ceil(codes.value / scale * hist_bins).astype(np.int64) - 1, 0, hist_bins - 1)
    hist = np.bincount(codes.latent.astype(np.int64) * hist_bins + bins, minlength=d_sae * hist_bins)
    return LatentStats(
        n_fired=n_fired,
        density=n_fired / max(codes.n_tokens, 1),
        max_act=max_act,
        mean_act=mean_act,
        hist_counts=hist.reshape(d_sae, hist_bins),
    )


def latent_maxima(latent: np.ndarray, value: np.ndarray, d_sae: int) -> np.ndarray:
    """[d_sae] float32 the largest value per latent, 0 for a latent without codes (np.maximum.at's result: a maximum
    is exact in any order), through torch's scatter, ~5x faster than the unbuffered ufunc on 30 M codes."""
    out = torch.zeros(d_sae, dtype=torch.float32)
    if len(latent):
        out.scatter_reduce_(0, torch.from_numpy(np.ascontiguousarray(latent, dtype=np.int64)),
                            torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)), reduce="amax")
    return out.numpy()


@dataclass
class ContextRefs:
    """Selected example contexts, one entry each."""

    latent: np.ndarray  # int32
    kind: np.ndarray  # uint8: 0 = top, b >= 1 = quantile bin
    rank: np.ndarray  # uint16
    token_index: np.ndarray  # int64 (row * seq_len + pos)
    act: np.ndarray  # float32


def rank_within_groups(sorted_groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of an already-sorted array."""
    n = len(sorted_groups)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run_lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, run_lengths)


def stable_order(key: np.ndarray) -> np.ndarray:
    """np.argsort(key, kind="stable"), the same permutation: for integer keys and non-negative floats (ordered as
    their bit patterns) through torch's stable sort, a parallel radix sort for integers on the CPU (the JumpReLU's 30 M
    int64 keys: 0.77 s on 2 cores, numpy's stable argsort 2.26 s: `python bench/context_sorts.py --k 115 --d-sae 1024
    --threads 2`)."""
    key = np.ascontiguousarray(key)
    if key.dtype in (np.float32, np.float64) and not bool(np.signbit(key).any()):  # no negatives, no -0.0
        key = key.view(np.int64 if key.itemsize == 8 else np.int32)
    if key.dtype.kind not in "iu" or key.ndim != 1 or key.dtype == np.uint64:
        return np.argsort(key, kind="stable")
    return torch.sort(torch.from_numpy(key), stable=True).indices.numpy()


def descending_bits(values: np.ndarray) -> np.ndarray | None:
    """int64 in [0, 2^31) that ascends as the positive float32 `values` descend (their bit patterns ascend with them);
    None when a value is not a positive finite float32."""
    values = np.asarray(values, dtype=np.float32)
    if len(values) and not bool(((values > 0) & np.isfinite(values)).all()):
        return None
    return (2**31 - 1) - values.view(np.int32).astype(np.int64)


def sort_key(major: np.ndarray, major_bound: int, minor: np.ndarray | None, minor_bits: int) -> np.ndarray | None:
    """major * 2^minor_bits + minor as one int64 (None if it could overflow or minor is None): one sort of it is the
    lexicographic sort by (major, minor)."""
    if minor is None or major_bound >= 2 ** (63 - minor_bits):
        return None
    return (major.astype(np.int64) << minor_bits) | minor


def top_contexts(codes: SparseCodes, n_top: int) -> ContextRefs:
    """Per latent, the n_top highest activations, preferring one context per corpus row: every row's
    peak ranks before any second peak from an already-used row, so a rare latent that fires several
    times in few rows still fills its n_top slots. Two sorts of one int64 key each (a three-key lexsort of every
    code: `python bench/context_sorts.py --threads 2`, 6.0 -> 1.5 s on a 4k-k32's 8.3 M codes); the same order,
    ties included."""
    row = codes.token_index // codes.seq_len
    n_latents = int(codes.latent.max()) + 1 if len(codes.latent) else 1
    desc = descending_bits(codes.value)
    # Sort by (latent, row, -value): the first entry of each (latent, row) run is that row's peak.
    key = sort_key(codes.latent.astype(np.int64) * codes.n_rows + row, n_latents * codes.n_rows, desc, 31)
    order = stable_order(key) if key is not None else np.lexsort((-codes.value, row, codes.latent))
    lat, row_sorted = codes.latent[order], row[order]
    is_row_peak = np.zeros(len(order), dtype=bool)
    # prepend=-1 marks each run's first entry (latents and rows are >= 0) and keeps an SAE that never fired
    # on these rows (no codes at all) an empty selection instead of an IndexError.
    is_row_peak[order[(np.diff(lat, prepend=-1) != 0) | (np.diff(row_sorted, prepend=-1) != 0)]] = True
    # Then rank within each latent: row peaks first (by value), then the rest (by value).
    key = sort_key(codes.latent, n_latents, None if desc is None else (~is_row_peak).astype(np.int64) << 31 | desc, 32)
    order2 = stable_order(key) if key is not None else np.lexsort((-codes.value, ~is_row_peak, codes.latent))
    ranks = rank_within_groups(codes.latent[order2])
    keep = order2[ranks < n_top]
    return ContextRefs(
        latent=codes.latent[keep],
        kind=np.zeros(len(keep), np.uint8),
        rank=ranks[ranks < n_top].astype(np.uint16),
        token_index=codes.token_index[keep],
        act=codes.value[keep],
    )


def quantile_contexts(codes: SparseCodes, max_act: np.ndarray, n_bins: int, n_per_bin: int, seed: int) -> ContextRefs:
    """Per latent and activation bin (equal width over (0, max]), a random sample of contexts."""
    scale = np.where(max_act > 0, max_act, 1.0)[codes.latent]
    bins = np.clip(np.ceil(codes.value / scale * n_bins).astype(np.int64), 1, n_bins)
    group = codes.latent.astype(np.int64) * (n_bins + 1) + bins
    random_key = np.random.default_rng(seed).random(len(group))
    # the (group, random key) order through one int64 key: each code's place in the random keys' order (they are
    # distinct with probability ~1; stable_order and the lexsort fallback keep ties in index order either way)
    place = np.empty(len(group), np.int64)
    place[stable_order(random_key)] = np.arange(len(group))
    bits = max(1, int(len(group)).bit_length())
    key = sort_key(group, (int(group.max()) + 1) if len(group) else 1, place, bits)
    order = stable_order(key) if key is not None else np.lexsort((random_key, group))
    ranks = rank_within_groups(group[order])
    keep = order[ranks < n_per_bin]
    order_in_keep = np.lexsort((-codes.value[keep], group[keep]))  # within a bin, show high first
    keep = keep[order_in_keep]
    return ContextRefs(
        latent=codes.latent[keep],
        kind=bins[keep].astype(np.uint8),
        rank=rank_within_groups(group[keep]).astype(np.uint16),
        token_index=codes.token_index[keep],
        act=codes.value[keep],
    )


def concat_refs(parts: list[ContextRefs]) -> ContextRefs:
    return ContextRefs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ContextRefs.__dataclass_fields__))


@dataclass
class WindowActivations:
    """The latent's activations on the tokens of its contexts' windows, each token once, named by the first context
    (in (kind, rank) order) whose window holds it; a context's own token left out where its level is the one the
    context's act gives (the reader derives those)."""

    latent: np.ndarray  # int32
    context: np.ndarray  # uint16: the owning context's place among the latent's contexts in (kind, rank) order
    rel_pos: np.ndarray  # int16: the token's position - the owning context's position
    level: np.ndarray  # uint8: activation_levels(value, max_act), in 1..ACTIVATION_LEVELS


def window_activations(codes: SparseCodes, refs: ContextRefs, max_act: np.ndarray, left: int, right: int,
                       first_position: int) -> WindowActivations:
    """Codes that fall in a window of one of the latent's contexts, found by binary search in the codes sorted by
    (latent, token), so the cost is O(contexts * log nnz) however many latents. `refs.act` and `max_act` must be
    the values the database stores: a context's own token is left out exactly when the level they give matches."""
    n_total = codes.n_rows * codes.seq_len
    key = codes.latent.astype(np.int64) * n_total + codes.token_index
    order = stable_order(key)
    sorted_key = key[order]
    ctx = np.lexsort((refs.rank, refs.kind, refs.latent))  # owners in (latent, kind, rank) order
    row = refs.token_index[ctx] // codes.seq_len
    pos = refs.token_index[ctx] % codes.seq_len
    base = refs.latent[ctx].astype(np.int64) * n_total + row * codes.seq_len
    lo = np.searchsorted(sorted_key, base + np.maximum(pos - left, first_position), side="left")
    hi = np.searchsorted(sorted_key, base + np.minimum(pos + right, codes.seq_len - 1), side="right")
    # Expand each [lo, hi) range into (code, owner) pairs without a Python loop; owners ascend.
    lengths = hi - lo
    owner = np.repeat(np.arange(len(ctx)), lengths)
    starts = np.repeat(lo - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    code = order[starts + np.arange(lengths.sum())]
    by_code = stable_order(code)  # stable: the first owner of a code stays first
    code, owner = code[by_code], owner[by_code]
    first = np.r_[True, np.diff(code) != 0] if len(code) else np.zeros(0, bool)
    code, owner = code[first], owner[first]  # overlapping windows stored once
    latent = codes.latent[code]
    level = activation_levels(codes.value[code], max_act[latent])
    keep = ~derivable_from_contexts(key[code], level, refs, max_act, n_total)
    place = rank_within_groups(refs.latent[ctx])  # each context's place within its latent, (kind, rank) order
    return WindowActivations(
        latent=latent[keep],
        context=place[owner[keep]].astype(np.uint16),
        rel_pos=(codes.token_index[code[keep]] % codes.seq_len - pos[owner[keep]]).astype(np.int16),
        level=level[keep],
    )


def derivable_from_contexts(keys: np.ndarray, levels: np.ndarray, refs: ContextRefs, max_act: np.ndarray,
                            n_total: int) -> np.ndarray:
    """Which (latent * n_total + token) codes are some context's own token at the level its act gives."""
    if len(refs.latent) == 0:
        return np.zeros(len(keys), bool)
    center = refs.latent.astype(np.int64) * n_total + refs.token_index
    center_keys, first = np.unique(center, return_index=True)  # two contexts on one token share its act
    center_levels = activation_levels(refs.act[first], max_act[refs.latent[first]])
    at = np.minimum(np.searchsorted(center_keys, keys), len(center_keys) - 1)
    return (center_keys[at] == keys) & (center_levels[at] == levels)


@torch.no_grad()
def logit_lens(sae, model, n: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top and bottom `n` tokens of each decoder direction through the unembedding (W_dec @ W_U)."""
    W_U = model.W_U.float()  # [d_model, d_vocab]
    n = min(n, W_U.shape[1])
    W_dec = sae.W_dec.float()  # [d_sae, d_model]
    tops_i, tops_v, bots_i, bots_v = [], [], [], []
    for start in range(0, W_dec.shape[0], chunk):
        with packed_linears(model):  # W_U is the model's: packed once
            logits = W_dec[start : start + chunk].to(W_U.device) @ W_U  # [chunk, d_vocab]
        top = logits.topk(n, dim=-1)
        bottom = logits.topk(n, dim=-1, largest=False)
        tops_i.append(top.indices.cpu()), tops_v.append(top.values.cpu())
        bots_i.append(bottom.indices.cpu()), bots_v.append(bottom.values.cpu())
    cat = lambda parts: torch.cat(parts).numpy()  # noqa: E731
    return cat(tops_i), cat(tops_v), cat(bots_i), cat(bots_v)


@torch.no_grad()
def decoder_neighbors(sae, n: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The n latents with the highest decoder cosine to each latent (itself excluded). A block of `chunk`
    latents at a time (default: as many as fit MAX_BLOCK_ELEMENTS), so the [d_sae, d_sae] cosines never exist:
    peak O(chunk * d_sae)."""
    if n <= 0:  # none asked for: skip the O(d_sae^2) cosines
        d_sae = sae.W_dec.shape[0]
        return np.zeros((d_sae, 0), dtype=np.int64), np.zeros((d_sae, 0), dtype=np.float32)
    W = torch.nn.functional.normalize(sae.W_dec.float(), dim=-1)  # [d_sae, d_model]
    chunk = chunk or rows_per_block(W.shape[0])
    ids, cos = [], []
    for start in range(0, W.shape[0], chunk):
        sims = W[start : start + chunk] @ W.T  # [chunk, d_sae]
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -2.0  # exclude self
        top = sims.topk(min(n, W.shape[0] - 1), dim=-1)
        ids.append(top.indices.cpu()), cos.append(top.values.cpu())
    return torch.cat(ids).numpy(), torch.cat(cos).numpy()
