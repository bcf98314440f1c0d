"""Tokens: strings, running text (token_latents, token_letters), vocabulary and task-word lookups (ExplorerDB's reads on this subject; backend/database.py composes them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from backend import queries as q
from backend.connection import Reader
from backend.latents import Context
from contract.rows import SaeRow
from contract.schema import (
    DEFAULT_TASK,
)


class TokenReads(Reader):
    """Tokens: strings, running text (token_latents, token_letters), vocabulary and task-word lookups."""

    def token_strings(self, model_name: str, token_ids: Sequence[int]) -> dict[int, str]:
        ids = sorted({int(t) for t in token_ids})
        if not ids:
            return {}
        return dict(self._rows(q.TOKEN_STRINGS, [model_name, ids]))

    def has_running_text(self) -> bool:
        """False for a database built before the token index existed."""
        return self.has_table("token_latents") and self.has_table("token_occurrences")

    def running_text_sae_keys(self) -> list[str]:
        """SAEs with running-text rows ([] when the tables are missing, or empty after a migration)."""
        return [row[0] for row in self._rows(q.RUNNING_TEXT_SAES)] if self.has_running_text() else []

    def has_token_letters(self) -> bool:
        return self.has_table("token_letters")

    def latents_by_running_token(self, sae: SaeRow, token: str, limit: int = 100) -> pd.DataFrame:
        """Latents among the top latents (by mean activation in running text) of tokens spelled like `token`
        (case-insensitive, surrounding spaces ignored): one row per (latent, token)."""
        return self._frame(q.LATENTS_BY_RUNNING_TOKEN, [sae.model_name, token, sae.sae_key, limit])

    def token_occurrences(self, sae: SaeRow, token: str, first_position: int = 1, max_rows: int = 50,
                          limit: int = 10) -> list[Context]:
        """Up to `limit` occurrences of tokens spelled like `token` in the stored corpus rows, as contexts of the
        SAE's window size with the token highlighted (act = 0: the latents' values there are not stored)."""
        rows = self._rows(q.TOKEN_OCCURRENCES_BY_TEXT,
                          [sae.model_name, token, sae.model_name, max_rows, first_position, limit])
        left, right = sae.context_left, sae.context_right
        windows = [(seq_id, pos, tokens, max(pos - left, first_position), min(pos + right, len(tokens) - 1))
                   for seq_id, pos, tokens in rows]
        names = self.token_strings(sae.model_name, [t for *_, tokens, lo, hi in windows for t in tokens[lo : hi + 1]])
        return [Context(kind=0, rank=i, seq_id=seq_id, pos=pos, act=0.0,
                        tokens=[names.get(t, f"<{t}>") for t in tokens[lo : hi + 1]],
                        token_positions=list(range(lo, hi + 1)), activations=[0.0] * (hi + 1 - lo))
                for i, (seq_id, pos, tokens, lo, hi) in enumerate(windows)]

    def token_running_text(self, model_name: str, token_id: int) -> list[TokenRunningText]:
        """The token in every SAE of the model where it occurs in the dashboard corpus."""
        return [running_text_row(row) for row in self._rows(q.TOKEN_RUNNING_TEXT, [model_name, token_id])]

    def tokens_running_text(self, sae_key: str, token_ids: Sequence[int]) -> dict[int, TokenRunningText]:
        """Several tokens in one SAE, by token id (tokens that do not occur are absent)."""
        ids = sorted({int(t) for t in token_ids})
        if not ids:
            return {}
        return {int(row[0]): running_text_row((sae_key, *row[1:]))
                for row in self._rows(q.TOKENS_RUNNING_TEXT, [sae_key, ids])}

    def token_letter_rates(self, model_name: str, token_id: int) -> list[TokenLetterRates]:
        """How often the token's first-letter latents fire on it in running text, per SAE with absorption results
        (running text is measured for the first-letter task only)."""
        return [TokenLetterRates(key, letter, int(main), float(main_rate), [int(x) for x in split],
                                 [float(x) for x in rates], float(any_split))
                for key, letter, main, main_rate, split, rates, any_split
                in self._rows(q.TOKEN_LETTER_RATES, [DEFAULT_TASK, model_name, token_id])]

    def longest_vocab_prefix(self, model_name: str, text: str) -> tuple[int, str] | None:
        rows = self._rows(q.LONGEST_VOCAB_PREFIX, [model_name, text])
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def nearest_task_words(self, model_name: str, word: str, limit: int = 8) -> list[str]:
        """Task words (probe words, leading space removed) most similar to `word`, itself excluded."""
        return [row[0] for row in self._rows(q.NEAREST_TASK_WORDS, [model_name, word, word, word, limit])]

    def probe_words_by_text(self, model_name: str, word: str) -> pd.DataFrame:
        """Task words spelled `word` or ` word` (one row per task, hook and token), with their prompt prefix."""
        return self._frame(q.PROBE_WORDS_BY_TEXT, [model_name, word, word])

    def vocab_tokens_by_text(self, model_name: str, word: str) -> pd.DataFrame:
        return self._frame(q.VOCAB_TOKEN_IDS_BY_TEXT, [model_name, word, word])

    def probe_vocabulary(self, model_name: str) -> list[str]:
        return [row[0] for row in self._rows(q.PROBE_VOCABULARY, [model_name])]

    def vocabulary_completions(self, model_name: str, prefix: str, limit: int = 12) -> list[str]:
        return [row[0] for row in self._rows(q.VOCABULARY_PREFIX, [model_name, prefix, limit])]


@dataclass(frozen=True)
class TokenRunningText:
    """One token in one SAE's dashboard corpus: its occurrences and its top latents by mean activation."""

    sae_key: str
    n_occurrences: int
    latents: list[int]
    mean_acts: list[float]  # over every occurrence (0 where the latent is silent)
    fire_rates: list[float]  # share of occurrences where the latent is > 0

    def fire_rate(self, latent: int) -> float | None:
        """The latent's firing rate on the token, or None when it is not among the stored top latents."""
        return self.fire_rates[self.latents.index(latent)] if latent in self.latents else None


def running_text_row(row: Sequence) -> TokenRunningText:
    key, n, latents, acts, rates = row
    return TokenRunningText(key, int(n), [int(x) for x in latents], [float(x) for x in acts], [float(x) for x in rates])


@dataclass(frozen=True)
class TokenLetterRates:
    """How often a token's first-letter latents fire on it in running text (one SAE)."""

    sae_key: str
    letter: str
    main_latent: int
    main_fire_rate: float
    split_latents: list[int]
    split_fire_rates: list[float]
    any_split_fire_rate: float
