"""One locked-down, read-only DuckDB connection factory and typed accessors for the explorer."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from backend import queries as q
from backend.scores import SCORE_SORTS, ScoreValidation, validation_from_row
from contract.rows import SaeRow, plain_row
from contract.schema import (
    ACTIVATION_LEVELS,
    DEFAULT_TASK,
    REQUIRED_META_KEYS,
    SCHEMA_VERSION,
    activation_levels,
    is_newer_schema,
    newer_schema_message,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = REPO_ROOT / "assets" / "demo.duckdb"
DB_ENV_VAR = "EXPLORER_DB"
EXPECTED_TABLES = {"meta", "vocab", "sequences", "saes", "latents", "contexts", "window_acts"}


class DatabaseError(Exception):
    """A database the app cannot use, with a message meant for the person running it."""


def database_path() -> Path:
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


def database_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime in ns, size) of the file now at `path`, None when there is none: a build, merge or migrate
    replaces the file by a rename, which changes all three, so a cache keyed on this follows the file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


CATALOG = "explorer"  # the database file's name inside the connection
USE_CATALOG = f"USE {CATALOG}"  # every cursor starts in the in-memory catalog: queries name no catalog


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only, no external access (no httpfs, no reading other local files from SQL).

    The file is ATTACHed to a private in-memory database instead of opened by `duckdb.connect(path)`: DuckDB keeps
    one instance per path and process, so once a build had renamed a new file over the path, a new connection
    would still have read the replaced file for as long as any old one lived. External access is switched off
    once the file is attached, and the configuration locked."""
    if not path.exists():
        raise DatabaseError(
            f"No explorer database at {path}. Build one with `python -m precompute build ...` "
            f"or point {DB_ENV_VAR} at an existing file."
        )
    con = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                             "autoinstall_known_extensions": False})
    try:
        con.execute(f"ATTACH ? AS {CATALOG} (READ_ONLY)", [str(path)])
        con.execute(USE_CATALOG)
        con.execute("SET enable_external_access = false")
        # DuckDB keeps the attached file itself readable and writable through SQL (DETACH, then ATTACH it again
        # read-write): no local file at all after the attach
        con.execute("SET disabled_filesystems = 'LocalFileSystem'")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as error:
        con.close()
        raise DatabaseError(f"{path} is not a readable DuckDB database: {first_line(error)}") from error
    return con


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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


class ExplorerDB:
    """Read-only access to one explorer database. Thread-safe: each query uses its own cursor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = connect_read_only(path)
        self._lock = threading.Lock()
        self.meta = self._check_schema()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cursor = self._con.cursor()
        cursor.execute(USE_CATALOG)
        return cursor

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).fetchall()
        finally:
            cursor.close()

    def _frame(self, sql: str, params: Sequence = ()) -> pd.DataFrame:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).df()
        finally:
            cursor.close()

    def _check_schema(self) -> dict[str, str]:
        tables = {row[0] for row in self._rows(q.TABLE_NAMES)}
        if "meta" not in tables:
            raise DatabaseError(f"{self.path} has no `meta` table: it was not written by `python -m precompute`.")
        meta = dict(self._rows(q.META))
        missing = [key for key in REQUIRED_META_KEYS if key not in meta]
        if missing:
            raise DatabaseError(f"{self.path} is incomplete (meta lacks {', '.join(missing)}); rebuild it.")
        if is_newer_schema(meta["schema_version"]):
            raise DatabaseError(newer_schema_message(self.path, meta["schema_version"]) + ".")
        if meta["schema_version"] != SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path} has schema version {meta['schema_version']}, this explorer reads version "
                f"{SCHEMA_VERSION}. Upgrade it with `python -m precompute migrate --db {self.path}` (no model pass), "
                "or rebuild it with this version's `python -m precompute build`."
            )
        if EXPECTED_TABLES - tables:
            raise DatabaseError(f"{self.path} lacks tables {sorted(EXPECTED_TABLES - tables)}; rebuild it.")
        return meta

    def close(self) -> None:
        self._con.close()

    # --- ground truth (toy runs) --------------------------------------------------------
    def has_truth(self, sae_key: str) -> bool:
        """The SAE reads a toy model whose true features are in the database."""
        return self.has_table("truth_latents") and bool(self._rows(q.HAS_TRUTH, [sae_key])[0][0])

    def truth_features(self, sae_key: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_FEATURES, [sae_key])

    def truth_latents(self, sae_key: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_LATENTS, [sae_key])

    def truth_verdict_counts(self, sae_key: str, task: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_VERDICT_COUNTS, [sae_key, task])

    # --- SAEs -------------------------------------------------------------------------------
    def saes(self) -> pd.DataFrame:
        return self._frame(q.LIST_SAES)

    def sae_keys(self) -> list[str]:
        return self.saes()["sae_key"].tolist()

    def sae(self, sae_key: str) -> SaeRow | None:
        frame = self._frame(q.GET_SAE, [sae_key])
        return None if frame.empty else SaeRow.from_record(frame.iloc[0].to_dict())

    def letter_probe_rows(self, sae_key: str, task: str) -> list[tuple]:
        """(class, split latents, main latent, probe weight, probe bias) per class of the SAE measured on `task` (the
        live page's projection metric); [] for a database without absorption tables. Only columns every schema
        since those tables has."""
        if self._rows(q.LIVE_LETTER_TABLES)[0][0] < 3:
            return []
        return self._rows(q.LIVE_LETTER_PROBES, [sae_key, task])

    # --- tokens -----------------------------------------------------------------------------
    def token_strings(self, model_name: str, token_ids: Sequence[int]) -> dict[int, str]:
        ids = sorted({int(t) for t in token_ids})
        if not ids:
            return {}
        return dict(self._rows(q.TOKEN_STRINGS, [model_name, ids]))

    # --- latents ----------------------------------------------------------------------------
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

    # --- probe-free absorption scores ------------------------------------------------------------
    def scored_sae_keys(self) -> list[str]:
        """SAEs with probe-free scores (the build could load their weights)."""
        return [row[0] for row in self._rows(q.SCORED_SAES)]

    def latent_scores(self, sae_key: str, latent: int) -> LatentScores | None:
        rows = self._rows(q.LATENT_SCORES, [sae_key, sae_key, latent])
        if not rows:
            return None
        enc_dec, parent, parent_latent, alive, enc_rank, parent_rank, density_rank, n_alive = rows[0]
        return LatentScores(float(enc_dec), float(parent), None if parent_latent is None else int(parent_latent),
                            bool(alive), int(enc_rank), int(parent_rank), int(density_rank), int(n_alive))

    def score_validation(self, sae_key: str, task: str = DEFAULT_TASK) -> list[ScoreValidation]:
        """How each score ranked this SAE's probe-found absorbers of the task ([] without absorption results)."""
        return [validation_from_row(plain_row(row)) for row in
                self._frame(q.SCORE_VALIDATION, [sae_key, task]).to_dict("records")]

    def scores_of(self, sae_key: str, latents: Sequence[int]) -> pd.DataFrame:
        """(latent, enc_dec_score, parent_score) of these latents."""
        return self._frame(q.LATENT_SCORES_OF, [sae_key, [int(x) for x in latents]])

    def latents_by_top_context_token(self, sae: SaeRow, token: str, limit: int = 100) -> pd.DataFrame:
        """The search for databases without the running-text index: top contexts peaking on the token."""
        return self._frame(q.LATENTS_BY_TOP_CONTEXT_TOKEN, [sae.model_name, token, sae.model_name, sae.sae_key, limit])

    def latents_by_logit_token(self, sae: SaeRow, token: str, limit: int = 100) -> pd.DataFrame:
        return self._frame(q.LATENTS_BY_LOGIT_TOKEN, [sae.model_name, token, sae.sae_key, limit])

    # --- running text (token_latents, token_letters) -------------------------------------------
    def has_table(self, name: str) -> bool:
        return self._rows(q.TABLE_EXISTS, [name])[0][0] > 0

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

    # --- absorption, per task --------------------------------------------------------------------
    # Every accessor takes the task (default: first_letter, what every caller and link before schema v10 meant);
    # `letter` is the task's class.
    def has_absorption_tables(self) -> bool:
        """False for a database written before the absorption tables (and their tasks) existed."""
        return self._rows(q.ABSORPTION_TABLES)[0][0] == 12

    def tasks(self) -> list[TaskInfo]:
        """The tasks of this database, first_letter first ([] without absorption tables)."""
        if not self.has_absorption_tables():
            return []
        return [TaskInfo(task, title, description, tuple(classes), tuple(answers), template, int(n_saes))
                for task, title, description, classes, answers, template, n_saes in self._rows(q.TASKS)]

    def task(self, name: str) -> TaskInfo | None:
        return next((task for task in self.tasks() if task.task == name), None)

    def sae_tasks(self, sae_key: str) -> list[str]:
        """The tasks this SAE has absorption results for, first_letter first."""
        return [row[0] for row in self._rows(q.SAE_TASKS, [sae_key])] if self.has_absorption_tables() else []

    def has_absorption(self, sae_key: str, task: str | None = None) -> bool:
        """Whether the SAE has absorption results: on `task`, or on any task when None."""
        if not self.has_absorption_tables():
            return False
        if task is None:
            return self._rows(q.SAE_HAS_ABSORPTION, [sae_key])[0][0] > 0
        return self._rows(q.SAE_HAS_TASK_ABSORPTION, [sae_key, task])[0][0] > 0

    def sae_absorption(self, sae_key: str, task: str = DEFAULT_TASK) -> dict | None:
        """The SAE's headline numbers on the task (sae_absorption row), or None when it was not measured."""
        frame = self._frame(q.SAE_ABSORPTION, [sae_key, task])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def all_sae_absorption(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per SAE measured on the task."""
        return self._frame(q.ALL_SAE_ABSORPTION, [task])

    def all_tasks_sae_absorption(self) -> pd.DataFrame:
        """One row per SAE and task it was measured on."""
        return self._frame(q.ALL_TASKS_SAE_ABSORPTION)

    def sae_letters(self, sae_key: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per class: split/main/best latents, absorption rates and the class's probe."""
        return self._frame(q.SAE_LETTERS, [sae_key, task])

    def sae_letter(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> dict | None:
        frame = self._frame(q.SAE_LETTER, [sae_key, task, letter])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def all_sae_letters(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.ALL_SAE_LETTERS, [task])

    def letter_probes(self, probe_run_id: str) -> pd.DataFrame:
        return self._frame(q.LETTER_PROBES, [probe_run_id])

    def probe_run(self, probe_run_id: str) -> dict | None:
        frame = self._frame(q.PROBE_RUN, [probe_run_id])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def hook_probe_runs(self, model_name: str, hook_name: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Every probe run of the task at a hook, newest first, with the SAEs measured against each."""
        return self._frame(q.HOOK_PROBE_RUNS, [model_name, hook_name, task])

    def probe_run_count(self, model_name: str) -> int:
        return self._rows(q.PROBE_RUN_COUNT, [model_name])[0][0]

    def probe_models(self) -> list[str]:
        return [row[0] for row in self._rows(q.PROBE_MODELS)]

    def sae_letter_k(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.SAE_LETTER_K, [sae_key, task, letter])

    def sae_letter_folds(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.SAE_LETTER_FOLDS, [sae_key, task, letter])

    def letter_latent_cos(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Every latent's decoder and encoder cosine with the class's probe direction, and its density."""
        return self._frame(q.LETTER_LATENT_COS, [sae_key, task, letter])

    def latent_letter_cos(self, sae_key: str, latent: int, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One latent's cosines with the probe directions of the task's classes (letter, decoder_cos, encoder_cos),
        in the task's class order."""
        return self._frame(q.LATENT_LETTER_COS, [sae_key, task, latent])

    def absorbed_words(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Projection rows with any absorption and every ablation row of the class, with the word's text."""
        return self._frame(q.ABSORBED_WORDS, [sae_key, task, letter])

    def probe_words_by_text(self, model_name: str, word: str) -> pd.DataFrame:
        """Task words spelled `word` or ` word` (one row per task, hook and token), with their prompt prefix."""
        return self._frame(q.PROBE_WORDS_BY_TEXT, [model_name, word, word])

    def vocab_tokens_by_text(self, model_name: str, word: str) -> pd.DataFrame:
        return self._frame(q.VOCAB_TOKEN_IDS_BY_TEXT, [model_name, word, word])

    def probe_vocabulary(self, model_name: str) -> list[str]:
        return [row[0] for row in self._rows(q.PROBE_VOCABULARY, [model_name])]

    def vocabulary_completions(self, model_name: str, prefix: str, limit: int = 12) -> list[str]:
        return [row[0] for row in self._rows(q.VOCABULARY_PREFIX, [model_name, prefix, limit])]

    def absorbed_examples(self, sae_key: str, limit: int = 12, task: str = DEFAULT_TASK) -> list[str]:
        return [row[0] for row in self._rows(q.ABSORBED_EXAMPLES, [sae_key, task, limit])]

    def token_absorption(self, model_name: str, token_id: int) -> pd.DataFrame:
        """One word across every SAE of the model: one row per SAE, task and metric."""
        return self._frame(q.TOKEN_ABSORPTION, [model_name, token_id])

    # --- comparing SAEs --------------------------------------------------------------------
    def sae_comparison(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per SAE: dashboard metrics, and headline absorption numbers on the task (NaN where not
        measured)."""
        return self._frame(q.COMPARE_SAES, [task])

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
class TaskInfo:
    """One absorption task of the database (the `tasks` table): its classes in label order."""

    task: str
    title: str
    description: str
    classes: tuple[str, ...]
    answers: tuple[str, ...]
    prompt_template: str
    n_saes: int = 0  # SAEs with results on it

    @property
    def is_letters(self) -> bool:
        """The first-letter task: classes are single letters (shown upper-case, matched case-insensitively)."""
        return self.task == DEFAULT_TASK

    def class_label(self, value: str) -> str:
        """How a class is shown: a letter upper-case, any other class as stored."""
        return value.upper() if self.is_letters else value

    @property
    def class_noun(self) -> str:
        return "letter" if self.is_letters else "class"

    @property
    def class_plural(self) -> str:
        return "letters" if self.is_letters else "classes"


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


def absorber(record: Mapping[str, Any]) -> tuple[int, float, float] | None:
    """The word's absorbing latent with its activation and score, from an absorption_words row (the build
    stored the first of its top latents that is not one of its fold's split latents); None when it has none."""
    latent = record.get("absorber")
    if latent is None or pd.isna(latent):
        return None
    return int(latent), float(record["absorber_act"]), float(record["absorber_score"])
