"""Each token in running text, from the dashboards pass's sparse codes: how often it occurs in the dashboard
corpus, which latents fire on it most, and how often its first letter's main and split latents fire on it.

All of it is vectorised over the codes (one sparse (token x latent) sum and count, then a sort): no Python
loop over tokens or latents, so the cost is a few sorts of the ~n_tokens * L0 codes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import sparse

from precompute.pipeline.dashboards import SparseCodes, rank_within_groups

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class LetterLatents:
    """One letter's latents in one SAE (a sae_letters row)."""

    letter: str  # 'a'..'z'
    main_latent: int
    split_latents: list[int]


@dataclass
class TokenCounts:
    """The (token, latent) pairs that fired anywhere in the corpus, summed and counted over occurrences."""

    n_occurrences: np.ndarray  # [n_vocab] int64: occurrences at positions >= first_position
    sums: sparse.csr_matrix  # [n_vocab, d_sae] float64: sum of the latent's activation on the token's occurrences
    counts: sparse.csr_matrix  # [n_vocab, d_sae] float64: occurrences where the latent is > 0 (same structure)


@dataclass
class TokenLatents:
    """Flat, one entry per (token, latent), sorted by token, then mean activation (highest first), then latent:
    each occurring token's top k latents by mean activation, plus, for an alphabetic token, every split latent of
    its first letter that fires on it at least once (so a split latent without an entry never fires on it)."""

    token_id: np.ndarray  # int32
    latent: np.ndarray  # int32
    mean_act: np.ndarray  # float64: mean over every occurrence (0 where the latent is silent)
    fire_rate: np.ndarray  # float64: share of occurrences where the latent is > 0


@dataclass
class TokenLetters:
    """Per occurring alphabetic token whose first letter the SAE has latents for, sorted by token id."""

    token_id: np.ndarray  # int32
    letter: np.ndarray  # object ('a'..'z')
    main_latent: np.ndarray  # int32
    main_fire_rate: np.ndarray  # float64
    any_split_fire_rate: np.ndarray  # float64: share of occurrences where at least one split latent is > 0


@dataclass
class LetterIndex:
    """The SAE's letter latents as arrays: token -> letter, letter -> main latent, (letter, latent) -> is split."""

    letter_of: np.ndarray  # [n_vocab] int64: index into LETTERS, -1 for tokens without measured letter latents
    main: np.ndarray  # [26] int64 (-1: no latents for the letter)
    member: np.ndarray  # [26, d_sae] bool: the latent is one of the letter's split latents

    @property
    def is_empty(self) -> bool:
        return not (self.letter_of >= 0).any()


def code_tokens(codes: SparseCodes, rows: np.ndarray) -> np.ndarray:
    """The token id at each code (codes.token_index indexes the flattened pass rows)."""
    return rows.reshape(-1)[codes.token_index].astype(np.int64)


def occurrence_counts(rows: np.ndarray, first_position: int, n_vocab: int) -> np.ndarray:
    """Occurrences of every token id at the positions the pass encoded (>= first_position)."""
    return np.bincount(rows[:, first_position:].reshape(-1).astype(np.int64), minlength=n_vocab)


def token_counts(codes: SparseCodes, rows: np.ndarray, first_position: int, d_sae: int) -> TokenCounts:
    n_vocab = int(rows.max()) + 1 if rows.size else 1
    tokens = code_tokens(codes, rows)
    shape = (n_vocab, d_sae)
    sums = sparse.csr_matrix((codes.value.astype(np.float64), (tokens, codes.latent)), shape=shape)
    counts = sparse.csr_matrix((np.ones(len(tokens)), (tokens, codes.latent)), shape=shape)
    sums.sum_duplicates()
    counts.sum_duplicates()
    assert np.array_equal(sums.indptr, counts.indptr) and np.array_equal(sums.indices, counts.indices)
    return TokenCounts(occurrence_counts(rows, first_position, n_vocab), sums, counts)


def letter_index(n_vocab: int, d_sae: int, alphabetic_ids: np.ndarray, alphabetic_letters: np.ndarray,
                 letters: list[LetterLatents]) -> LetterIndex:
    """Arrays for the vectorised lookups; alphabetic tokens whose letter has no latents get -1, like the others."""
    by_letter = {item.letter: item for item in letters}
    letter_of = np.full(n_vocab, -1, np.int64)
    in_range = alphabetic_ids < n_vocab
    letter_of[alphabetic_ids[in_range]] = letter_indices(alphabetic_letters[in_range])
    measured = np.array([c in by_letter for c in LETTERS])
    letter_of[(letter_of >= 0) & ~measured[np.maximum(letter_of, 0)]] = -1
    main = np.array([by_letter[c].main_latent if c in by_letter else -1 for c in LETTERS], dtype=np.int64)
    member = np.zeros((len(LETTERS), d_sae), dtype=bool)
    for i, c in enumerate(LETTERS):  # 26 letters, a few latents each
        if c in by_letter:
            member[i, list(by_letter[c].split_latents)] = True
    return LetterIndex(letter_of, main, member)


def letter_indices(letters: np.ndarray) -> np.ndarray:
    """'a'..'z' -> 0..25, vectorised."""
    return np.asarray(letters, dtype="U1").view(np.int32).astype(np.int64) - ord("a")


def split_of_own_letter(index: LetterIndex, tokens: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """For each (token, latent) pair: is the latent a split latent of the token's first letter?"""
    letter = index.letter_of[tokens]
    return (letter >= 0) & index.member[np.maximum(letter, 0), latents]


def top_token_latents(counts: TokenCounts, k: int, index: LetterIndex | None = None) -> TokenLatents:
    """Every token's k latents of highest mean activation over its occurrences (ties: the lower latent id first),
    and the split latents of its first letter that fire on it (`index`; none when None)."""
    row = np.repeat(np.arange(counts.sums.shape[0]), np.diff(counts.sums.indptr))
    latent, total, fired = counts.sums.indices, counts.sums.data, counts.counts.data
    order = np.lexsort((latent, -total, row))
    kept = rank_within_groups(row[order]) < k
    if index is not None:
        kept |= split_of_own_letter(index, row[order], latent[order])
    keep = order[kept]  # still sorted by (token, mean activation, latent)
    n = counts.n_occurrences[row[keep]]
    return TokenLatents(token_id=row[keep].astype(np.int32), latent=latent[keep].astype(np.int32),
                        mean_act=total[keep] / n, fire_rate=fired[keep] / n)


def pair_counts(counts: sparse.csr_matrix, tokens: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """counts[tokens[i], latents[i]] for every i (0 where the pair never fired)."""
    if len(tokens) == 0:
        return np.zeros(0)
    return np.asarray(counts[tokens, latents]).reshape(-1)


def token_letters(codes: SparseCodes, rows: np.ndarray, counts: TokenCounts, index: LetterIndex) -> TokenLetters:
    """For every alphabetic token that occurs and whose first letter has latents: how often that letter's main
    latent, and any of its split latents, fire on it (shares of its occurrences)."""
    tokens = np.flatnonzero((index.letter_of >= 0) & (counts.n_occurrences > 0))
    letter = index.letter_of[tokens]
    n_occ = counts.n_occurrences[tokens].astype(np.float64)
    # Corpus positions where at least one split latent of the token's own letter fired.
    positions = np.unique(codes.token_index[split_of_own_letter(index, code_tokens(codes, rows), codes.latent)])
    any_split = np.bincount(rows.reshape(-1)[positions].astype(np.int64), minlength=len(index.letter_of))[tokens]
    return TokenLetters(
        token_id=tokens.astype(np.int32),
        letter=np.array(list(LETTERS), dtype=object)[letter],
        main_latent=index.main[letter].astype(np.int32),
        main_fire_rate=pair_counts(counts.counts, tokens, index.main[letter]) / n_occ,
        any_split_fire_rate=any_split / n_occ,
    )


def rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded to `decimals` (exact short decimals compress several-fold in DuckDB)."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).astype(np.float32)


@dataclass(frozen=True)
class Rounding:
    """Decimals of the stored values, chosen on a real build (README, storage): exact short decimals compress
    several-fold in DuckDB (ALP)."""

    mean_act: int = 1
    fire_rate: int = 3


def token_occurrences_table(key: str, counts: TokenCounts) -> pa.Table:
    occurring = np.flatnonzero(counts.n_occurrences > 0)
    return pa.table({
        "sae_key": [key] * len(occurring),
        "token_id": pa.array(occurring, type=pa.int32()),
        "n_occurrences": pa.array(counts.n_occurrences[occurring], type=pa.int32()),
    })


def token_latents_table(key: str, stats: TokenLatents, rounding: Rounding = Rounding()) -> pa.Table:
    return pa.table({
        "sae_key": [key] * len(stats.token_id),
        "token_id": pa.array(stats.token_id, type=pa.int32()),
        "latent": pa.array(stats.latent, type=pa.int32()),
        "mean_act": pa.array(rounded(stats.mean_act, rounding.mean_act), type=pa.float32()),
        "fire_rate": pa.array(rounded(stats.fire_rate, rounding.fire_rate), type=pa.float32()),
    })


def token_letters_table(key: str, stats: TokenLetters, rounding: Rounding = Rounding()) -> pa.Table:
    return pa.table({
        "sae_key": [key] * len(stats.token_id),
        "token_id": pa.array(stats.token_id, type=pa.int32()),
        "main_fire_rate": pa.array(rounded(stats.main_fire_rate, rounding.fire_rate), type=pa.float32()),
        "any_split_fire_rate": pa.array(rounded(stats.any_split_fire_rate, rounding.fire_rate), type=pa.float32()),
    })
