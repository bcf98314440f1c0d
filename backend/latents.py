"""Latents: one latent's dashboard (stats, contexts), browsing, probe-free scores, matches and roles (ExplorerDB's reads on this subject; backend/database.py composes them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from backend import queries as q
from backend.connection import Reader
from backend.scores import SCORE_SORTS
from contract.rows import SaeRow
from contract.schema import (
    ACTIVATION_LEVELS,
    activation_levels,
)


@dataclass(frozen=True)
class Context:
    kind: int  # 0 = top activations, b >= 1 = quantile bin b
    rank: int
    seq_id: int
    pos: int  # highlighted token position in the sequence
    act: float
    tokens: list[str]  # window tokens, decoded
    token_positions: list[int]  # sequence position of each window token
    activations: list[float]  # latent activation on each window token (0 where it did not fire)


@dataclass(frozen=True)
class Latent:
    latent: int
    n_fired: int
    density: float
    max_act: float
    mean_act: float
    hist_counts: list[int]
    top_logits: list[tuple[str, float]]
    bottom_logits: list[tuple[str, float]]
    neighbors: list[tuple[int, float]]

    @property
    def is_dead(self) -> bool:
        return self.n_fired == 0


def window_levels(contexts: list[tuple[int, int, int, float]], stored: list[tuple[int, int, int]],
                  max_act: float) -> dict[tuple[int, int], int]:
    """(seq_id, pos) -> activation level on the latent's context windows. `contexts`: its (context, seq_id, pos,
    act) rows, `context` its place among the latent's contexts in (kind, rank) order; `stored`: its window_acts rows
    (context, rel_pos, level). A context's own token has the level its act gives unless a stored row says otherwise
    (the writer leaves those rows out)."""
    derived = activation_levels([act for *_, act in contexts], max_act)
    levels = {(seq_id, pos): int(level) for (_, seq_id, pos, _), level in zip(contexts, derived)}
    at = {context: (seq_id, pos) for context, seq_id, pos, _ in contexts}
    for context, rel_pos, level in stored:
        if context in at:
            seq_id, pos = at[context]
            levels[(seq_id, pos + rel_pos)] = int(level)
    return levels


@dataclass(frozen=True)
class LatentLabel:
    """A latent's label from its activations (latent_labels), and a later explainer's text where one is stored."""

    label: str  # "'K…' words: Kosher, Kefir, Ketmie (41 %)"
    top_tokens: list[tuple[str, float]]  # (token, share of the latent's activation mass), most first
    explanation: str | None
    explanation_source: str | None


LABEL_CANDIDATES = 500  # label matches ranked in Python (whole-word first) before the search shows its first few


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class LatentReads(Reader):
    """Latents: one latent's dashboard (stats, contexts), browsing, probe-free scores, matches and roles."""

    def latent(self, sae: SaeRow, latent: int) -> Latent | None:
        rows = self._rows(q.GET_LATENT, [sae.sae_key, latent])
        if not rows:
            return None
        (lat, n_fired, density, max_act, mean_act, hist, top_ids, top_vals, bot_ids, bot_vals, nb_ids, nb_cos) = rows[0]
        names = self.token_strings(sae.model_name, list(top_ids) + list(bot_ids))
        return Latent(
            latent=lat, n_fired=n_fired, density=density, max_act=max_act, mean_act=mean_act,
            hist_counts=list(hist),
            top_logits=[(names.get(t, f"<{t}>"), v) for t, v in zip(top_ids, top_vals)],
            bottom_logits=[(names.get(t, f"<{t}>"), v) for t, v in zip(bot_ids, bot_vals)],
            neighbors=[(n, c) for n, c in zip(nb_ids, nb_cos) if n >= 0],  # -1: padding of a tiny SAE
        )

    def contexts(self, sae: SaeRow, latent: int, max_act: float) -> list[Context]:
        rows = self._rows(q.LATENT_CONTEXTS, [sae.sae_key, latent, sae.model_name])
        levels = window_levels([(context, seq_id, pos, act) for _, _, seq_id, pos, act, _, context in rows],
                               self._rows(q.LATENT_WINDOW_ACTS, [sae.sae_key, latent]), max_act)
        left, right = sae.context_left, sae.context_right
        windows = []
        for kind, rank, seq_id, pos, act, tokens, _ in rows:
            lo, hi = max(pos - left, 1), min(pos + right, len(tokens) - 1)
            windows.append((kind, rank, seq_id, pos, act, tokens[lo : hi + 1], lo))
        names = self.token_strings(sae.model_name, [t for w in windows for t in w[5]])
        return [
            Context(
                kind=kind, rank=rank, seq_id=seq_id, pos=pos, act=act,
                tokens=[names.get(t, f"<{t}>") for t in window_tokens],
                token_positions=list(range(lo, lo + len(window_tokens))),
                activations=[levels.get((seq_id, p), 0) / ACTIVATION_LEVELS * max_act for p in range(lo, lo + len(window_tokens))],
            )
            for kind, rank, seq_id, pos, act, window_tokens, lo in windows
        ]

    def latent_label(self, sae: SaeRow, latent: int) -> LatentLabel | None:
        """None where the latent never fired, or the database has no labels for its SAE (has_labels)."""
        rows = self._rows(q.LATENT_LABEL, [sae.sae_key, latent])
        if not rows:
            return None
        label, ids, shares, explanation, source = rows[0]
        names = self.token_strings(sae.model_name, list(ids))
        return LatentLabel(label, [(names.get(t, f"<{t}>"), float(v)) for t, v in zip(ids, shares)], explanation, source)

    def latent_labels_of(self, sae_key: str, latents: Sequence[int]) -> dict[int, str]:
        """latent -> label for those of `latents` that have one."""
        rows = self._rows(q.LATENT_LABELS_OF, [sae_key, [int(x) for x in latents]]) if len(latents) else []
        return {int(latent): label for latent, label in rows}

    def labelled_sae_keys(self) -> set[str]:
        """SAEs with latent labels (a database migrated from schema v13 has none until a build adds them)."""
        return {row[0] for row in self._rows(q.LABELLED_SAES)}

    def latents_by_label(self, text: str, first_sae: str | None, limit: int = 20) -> pd.DataFrame:
        """(sae_key, latent, label) whose label contains `text` (case-insensitive): labels naming it as a whole word
        first (`k` finds "k, K" before "take"), then `first_sae`'s, then by how much of the latent the label covers."""
        found = self._frame(q.LATENTS_BY_LABEL, [like_pattern(text), first_sae or "", LABEL_CANDIDATES])
        whole = re.compile(rf"(?<![^\W_]){re.escape(text)}(?![^\W_])", re.IGNORECASE)
        order = sorted(range(len(found)), key=lambda i: whole.search(found["label"].iloc[i]) is None)  # stable
        return found.iloc[order[:limit]].reset_index(drop=True)

    def latent_roles_of(self, sae_key: str, latents: Sequence[int]) -> pd.DataFrame:
        """(latent, task, role, letter, n_words): each of `latents`' roles in the SAE's absorption results."""
        return self._frame(q.LATENT_ROLES_OF, [[int(x) for x in latents], sae_key, sae_key, sae_key])

    def count_live_latents(self, sae_key: str) -> int:
        return self._rows(q.COUNT_LIVE, [sae_key])[0][0]

    def live_latent_at(self, sae_key: str, offset: int) -> int | None:
        rows = self._rows(q.LIVE_LATENT_AT, [sae_key, offset])
        return rows[0][0] if rows else None

    def browse(self, sae_key: str, sort: str, min_density: float, max_density: float, limit: int, offset: int) -> pd.DataFrame:
        return self._frame(q.BROWSE_LATENTS[sort], [sae_key, min_density, max_density, limit, offset])

    def count_browse(self, sae_key: str, min_density: float, max_density: float, sort: str | None = None) -> int:
        """Latents a Browse listing pages through: every latent, or the alive scored ones for a score sort."""
        sql = q.COUNT_BROWSE_BY_SCORE if sort in SCORE_SORTS else q.COUNT_BROWSE
        return self._rows(sql, [sae_key, min_density, max_density])[0][0]

    def latent_scores(self, sae_key: str, latent: int) -> LatentScores | None:
        rows = self._rows(q.LATENT_SCORES, [sae_key, sae_key, latent])
        if not rows:
            return None
        enc_dec, parent, parent_latent, alive, enc_rank, parent_rank, density_rank, n_alive = rows[0]
        return LatentScores(float(enc_dec), float(parent), None if parent_latent is None else int(parent_latent),
                            bool(alive), int(enc_rank), int(parent_rank), int(density_rank), int(n_alive))

    def scores_of(self, sae_key: str, latents: Sequence[int]) -> pd.DataFrame:
        """(latent, enc_dec_score, parent_score) of these latents."""
        return self._frame(q.LATENT_SCORES_OF, [sae_key, [int(x) for x in latents]])

    def latents_by_top_context_token(self, sae: SaeRow, token: str, limit: int = 100) -> pd.DataFrame:
        """The search for databases without the running-text index: top contexts peaking on the token."""
        return self._frame(q.LATENTS_BY_TOP_CONTEXT_TOKEN, [sae.model_name, token, sae.model_name, sae.sae_key, limit])

    def latents_by_logit_token(self, sae: SaeRow, token: str, limit: int = 100) -> pd.DataFrame:
        return self._frame(q.LATENTS_BY_LOGIT_TOKEN, [sae.model_name, token, sae.sae_key, limit])

    def latent_matches(self, sae_key: str, latent: int) -> pd.DataFrame:
        """The latent's closest decoder direction in each other SAE at its hook, with that SAE's size."""
        return self._frame(q.LATENT_MATCHES, [sae_key, latent])

    def latent_match_roles(self, sae_key: str, latent: int) -> pd.DataFrame:
        """Roles of the matched latents in every task: (sae_key, task, role main|split|absorber, letter, n_words)."""
        return self._frame(q.LATENT_MATCH_ROLES, [sae_key, latent])

    def latent_roles(self, sae_key: str, latent: int) -> LatentRoles:
        """The latent's roles in every task (each frame has a `task` column)."""
        return LatentRoles(
            main=self._frame(q.LATENT_MAIN_LETTERS, [sae_key, latent]),
            best=self._frame(q.LATENT_BEST_LETTERS, [sae_key, latent]),
            split=self._frame(q.LATENT_SPLIT_LETTERS, [latent, sae_key, latent]),
            absorbed=self._frame(q.LATENT_ABSORBED_WORDS, [sae_key, latent]),
        )


@dataclass(frozen=True)
class LatentScores:
    """A latent's probe-free absorption scores and their ranks (1 = most suspect) among its SAE's alive latents."""

    enc_dec: float
    parent: float
    parent_latent: int | None  # the denser latent whose decoder direction it carries most; None: none is denser
    alive: bool  # fired on the dashboard corpus (a dead latent is not ranked)
    enc_dec_rank: int
    parent_rank: int
    density_rank: int
    n_alive: int


@dataclass(frozen=True)
class LatentRoles:
    """Where a latent shows up in the absorption tasks (every frame has `task` and `letter`, the class)."""

    main: pd.DataFrame  # classes where it is the main latent (task, letter, main_f1)
    best: pd.DataFrame  # classes where it is the best single latent (task, letter, best_f1)
    split: pd.DataFrame  # classes where it is one of the split latents (task, letter, split_rank, n_split)
    absorbed: pd.DataFrame  # words whose class it absorbed as the top latent (task, letter, metric, word, act, ...)

    @property
    def empty(self) -> bool:
        return self.main.empty and self.best.empty and self.split.empty and self.absorbed.empty
