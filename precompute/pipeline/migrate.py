"""Upgrading a database written at an older schema version, instead of rebuilding it: a fresh database with
this version's DDL is filled from the old one (crash-safe: the same work-copy-and-rename as a build), every
column it shares copied (or rewritten where this version stores it differently), new columns given the value that states what the old build did, new tables derived
where the old rows determine them, and the probe-free absorption scores computed from the SAEs' weights (local
folders at `saes.path`, relative to the working directory or the repository; releases through sae-lens; an SAE
that cannot be loaded is left unscored and the pages say so). Tables that need a model pass (running-text token
statistics, latent labels) stay empty: the pages say so, and the next `build` of those SAEs fills them (it reruns
the pass of an SAE without latent labels).

    python -m precompute migrate --db assets/demo.duckdb
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import duckdb

from contract.schema import (
    ACTIVATION_LEVELS,
    COS_BLOCK,
    COS_SCALE,
    N_NEIGHBORS,
    SCHEMA_VERSION,
    is_newer_schema,
    newer_schema_message,
)
from precompute.absorption.tables import K_STAT_DECIMALS
from precompute.absorption.tasks import FIRST_LETTER
from precompute.pipeline.probe_free import run_scores_stage
from precompute.storage.lock import writer_lock
from precompute.storage.writer import (
    WORK_META_KEYS,
    SchemaMismatchError,
    atomic_database,
    catalog_tables,
    current_catalog,
    snapshot,
    stored_schema_version,
    table_columns,
    write_task,
)

# Schema v6 measured every SAE with SAEBench's 80/20 split: one fold (fold 0 = the test words), one probe.
V6_DEFAULTS: dict[tuple[str, str], str] = {
    ("probe_runs", "split_mode"): "'holdout'",
    ("probe_runs", "n_folds"): "1",
    ("probe_words", "fold"): "CASE WHEN is_test THEN 0 END",
    ("sae_absorption", "split_mode"): "'holdout'",
    ("sae_absorption", "n_folds"): "1",
    ("sae_absorption", "n_unstable_letters"): "0",
    ("sae_letters", "split_stability"): "1.0",
    ("sae_letters", "main_stability"): "1.0",
    ("sae_letter_k", "fold"): "0",
    ("absorption_words", "fold"): "0",
}
V6_DERIVED: dict[str, str] = {
    "probe_folds": """
        INSERT INTO probe_folds (probe_run_id, task, fold, letter, weight, bias, n_words, n_probe_true_positives)
        SELECT probe_run_id, 'first_letter', 0, letter, weight, bias, n_test, n_probe_true_positives FROM old.letter_probes""",
    "sae_letter_folds": """
        INSERT INTO sae_letter_folds (sae_key, task, probe_run_id, letter, fold, split_latents, main_latent, main_f1,
            n_probe_true_positives, mean_absorption_fraction, full_absorption_rate, paper_absorption_rate,
            n_candidates, n_sampled)
        SELECT sae_key, 'first_letter', probe_run_id, letter, 0, split_latents, main_latent, main_f1, n_probe_true_positives,
               mean_absorption_fraction, full_absorption_rate, paper_absorption_rate, n_candidates, n_sampled
        FROM old.sae_letters""",
}

def sae_num(alias: str, column: str = "sae_key") -> str:
    """An old row's SAE number (v9: the large tables name SAEs by number), from its key; sae_numbers is filled
    first (copy_tables)."""
    return f"(SELECT n.sae_num FROM sae_numbers n WHERE n.sae_key = {alias}.{column})"


# Schema v8 keeps each absorbed word's absorber (the first of its top latents that is not one of its fold's
# split latents, as the views computed it) instead of the three top lists, and the letter cosines to 3 decimals.
def absorber_rows(split_source: str) -> str:
    """absorption_words at v8 from a v6/v7 table: `split_source` gives each row's split latents as `f`."""
    first = "list_position(list_transform(w.top_latents, lambda x: NOT list_contains(f.split_latents, x)), true)"
    return f"""
        INSERT INTO absorption_words (sae_num, task, probe_run_id, metric, letter, token_id, fold, probe_projection,
            absorption_fraction, is_full_absorption, is_absorption, absorber, absorber_act, absorber_score)
        SELECT {sae_num("w")}, 'first_letter', w.probe_run_id, w.metric, w.letter, w.token_id, {{fold}}, w.probe_projection,
               w.absorption_fraction, w.is_full_absorption, w.is_absorption,
               w.top_latents[i], round(w.top_acts[i], 3), round(w.top_scores[i], 3)
        FROM (SELECT w.*, {first} AS i FROM old.absorption_words w {split_source}) w
        ORDER BY 1, w.metric, w.letter, w.token_id"""


# Schema v9 numbers the SAEs (sae_numbers, in the order they were built) and names them by number in the large
# tables; stores the latents' fixed-length lists as ARRAYs (a tiny SAE's neighbours padded with -1 / NULL) and
# each latent's 26 letter cosines as two SMALLINT[26] in thousandths instead of a row per latent and letter.
V9_DERIVED: dict[str, str] = {
    "sae_numbers": """
        INSERT INTO sae_numbers (sae_key, sae_num)
        SELECT sae_key, row_number() OVER (ORDER BY created_at, sae_key) FROM old.saes""",
    "latents": f"""
        INSERT INTO latents (sae_num, latent, n_fired, density, max_act, mean_act, hist_counts, top_logit_ids,
            top_logit_values, bottom_logit_ids, bottom_logit_values, neighbor_ids, neighbor_cosines)
        SELECT {sae_num("o")}, latent, n_fired, density, max_act, mean_act, hist_counts, top_logit_ids,
               top_logit_values, bottom_logit_ids, bottom_logit_values, list_resize(neighbor_ids, {N_NEIGHBORS}, -1),
               list_resize(neighbor_cosines, {N_NEIGHBORS})
        FROM old.latents o ORDER BY 1, latent""",
    "latent_letter_cos": "",  # cos_block_rows(V8_COSINES), below
}
V6_DERIVED.update(V9_DERIVED)
V6_DERIVED["absorption_words"] = absorber_rows(
    "LEFT JOIN old.sae_letters f ON f.sae_key = w.sae_key AND f.letter = w.letter").format(fold="0")
V7_DERIVED: dict[str, str] = {"absorption_words": absorber_rows(
    "LEFT JOIN old.sae_letter_folds f ON f.sae_key = w.sae_key AND f.letter = w.letter AND f.fold = w.fold"
).format(fold="w.fold"), **V9_DERIVED}
# Schema v9 also adds the probe-free absorption scores (latent_scores, score_validation): no old rows determine them,
# so every migration computes them from the SAEs' weights after copying (precompute/pipeline/probe_free.py).
# Schema v10 makes the task a parameter: every absorption table names its task (every older result is first_letter),
# the tasks table describes each, latent_letter_cos holds one value per class (SMALLINT[], not [26]), and a stored
# absorption config names its task and its classes' answers (so a rebuild with the same settings reuses its probes).
TASK_DEFAULT = "'first_letter'"  # any table's new `task` column, from a database that predates tasks


def write_first_letter_task(con: duckdb.DuckDBPyConnection) -> None:
    write_task(con, FIRST_LETTER)


V10_DERIVED: dict[str, str | Callable[[duckdb.DuckDBPyConnection], None]] = {"tasks": write_first_letter_task}
for derived in (V6_DERIVED, V7_DERIVED, V9_DERIVED):
    derived.update(V10_DERIVED)
# Schema v11 adds the toy run's ground truth (truth_features, truth_words, truth_latents): only a toy model's build
# writes them, so a migrated database has them empty.
# Schema v12 names each window activation by a context of its latent in the same sequence and its offset from that
# context's token (10 bits instead of a corpus position's 18), and leaves out a context's own token where the
# context's act gives its level (about half the rows; the reader derives them: backend/database.window_levels).


def window_rows(key: str) -> str:
    """window_acts at v12 from an older one (a row per corpus position), whose SAEs are named by `key` (sae_key
    before v9, sae_num since). The owner is the latent's context in the same sequence nearest the token: its window
    holds the token whenever any does. The level a context's act gives is computed as activation_levels does
    (float64, half to even), so the reader derives exactly the rows left out."""
    num = sae_num("w", "k") if key == "sae_key" else "w.k"
    levels = ACTIVATION_LEVELS
    return f"""
        INSERT INTO window_acts (sae_num, latent, context, rel_pos, level)
        WITH centers AS (
            SELECT DISTINCT c.{key} AS k, c.latent, c.seq_id, c.pos, least({levels}, greatest(1, round_even(
                       c.act::DOUBLE / (CASE WHEN l.max_act > 0 THEN l.max_act ELSE 1 END)::DOUBLE * {levels}, 0))) AS level
            FROM old.contexts c JOIN old.latents l ON l.{key} = c.{key} AND l.latent = c.latent),
        kept AS (
            SELECT w.{key} AS k, w.latent, w.seq_id, w.pos, w.level FROM old.window_acts w
            LEFT JOIN centers c ON c.k = w.{key} AND c.latent = w.latent AND c.seq_id = w.seq_id AND c.pos = w.pos
            WHERE c.level IS DISTINCT FROM w.level),
        numbered AS (
            SELECT {key} AS k, latent, seq_id, pos, kind, rank,
                   row_number() OVER (PARTITION BY {key}, latent ORDER BY kind, rank) - 1 AS context
            FROM old.contexts),
        owned AS (
            SELECT w.k, w.latent, c.context, w.pos::INTEGER - c.pos::INTEGER AS rel_pos, w.level,
                   row_number() OVER (PARTITION BY w.k, w.latent, w.seq_id, w.pos
                                      ORDER BY abs(w.pos::INTEGER - c.pos::INTEGER), c.kind, c.rank) AS nth
            FROM kept w JOIN numbered c ON c.k = w.k AND c.latent = w.latent AND c.seq_id = w.seq_id)
        SELECT {num}, w.latent, w.context, w.rel_pos, w.level FROM owned w WHERE nth = 1
        ORDER BY 1, w.latent, w.context, w.rel_pos"""


# It also stores latent_letter_cos a row per class and block of COS_BLOCK latents (lists over the latents) instead of a
# row per latent (lists over the classes), in steps of 1 / COS_SCALE instead of thousandths.
def cos_block_rows(cosines: str) -> str:
    """latent_letter_cos at v12 from `cosines`: a SELECT of (sae_num, task, probe_run_id, latent, class_index,
    decoder_cos, encoder_cos) in thousandths, a row per latent and class (every latent of the SAE), stored in steps of
    1 / COS_SCALE."""
    return f"""
        INSERT INTO latent_letter_cos (sae_num, task, probe_run_id, class_index, first_latent, decoder_cos, encoder_cos)
        SELECT sae_num, task, probe_run_id, class_index, latent // {COS_BLOCK} * {COS_BLOCK} AS first_latent,
               list(round(decoder_cos::DOUBLE * {COS_SCALE} / 1000)::SMALLINT ORDER BY latent),
               list(round(encoder_cos::DOUBLE * {COS_SCALE} / 1000)::SMALLINT ORDER BY latent)
        FROM ({cosines}) GROUP BY ALL ORDER BY ALL"""


# v8 and older: a row per latent and letter (SAEs by key, REAL cosines); v9: SMALLINT[26] per latent, no task;
# v10, v11: SMALLINT[] per latent (a value per class of its task)
V8_COSINES = f"""
    SELECT {sae_num("o")} AS sae_num, 'first_letter' AS task, probe_run_id, latent, ascii(letter) - 96 AS class_index,
           decoder_cos * 1000 AS decoder_cos, encoder_cos * 1000 AS encoder_cos
    FROM old.latent_letter_cos o"""


def listed_cosines(task: str) -> str:
    return f"""
    SELECT sae_num, {task} AS task, probe_run_id, latent, generate_subscripts(decoder_cos, 1) AS class_index,
           unnest(decoder_cos) AS decoder_cos, unnest(encoder_cos) AS encoder_cos
    FROM old.latent_letter_cos"""


for derived in (V6_DERIVED, V7_DERIVED, V9_DERIVED):
    derived["latent_letter_cos"] = cos_block_rows(V8_COSINES)
V10_DERIVED["latent_letter_cos"] = cos_block_rows(listed_cosines(TASK_DEFAULT))


# It also keeps each absorbed word's non-zero split-latent activations a row each (absorption_split_acts) instead of
# a list per word: every older absorption_words has the lists.
def split_act_rows(key: str, task: str) -> str:
    """absorption_split_acts from an older absorption_words (SAEs named by `key`; `task`: its task column, or the
    task every row of a database before v10 measured). Both metrics' rows of a word hold the same activations."""
    num = sae_num("w", "k") if key == "sae_key" else "w.k"
    return f"""
        INSERT INTO absorption_split_acts (sae_num, task, token_id, split_index, act)
        SELECT DISTINCT {num}, w.task, w.token_id, w.i, w.act
        FROM (SELECT {key} AS k, {task} AS task, token_id, unnest(split_acts) AS act, generate_subscripts(split_acts, 1) AS i
              FROM old.absorption_words) w
        WHERE w.act > 0 ORDER BY ALL"""


for derived, key, task in ((V6_DERIVED, "sae_key", TASK_DEFAULT), (V7_DERIVED, "sae_key", TASK_DEFAULT),
                           (V9_DERIVED, "sae_key", TASK_DEFAULT), (V10_DERIVED, "sae_num", TASK_DEFAULT)):
    derived["window_acts"] = window_rows(key)
    derived["absorption_split_acts"] = split_act_rows(key, task)
# and rounds the k-sparse probes' statistics to 4 decimals (the build's K_STAT_DECIMALS)
K_STATS_ROUNDED = {("sae_letter_k", stat): f"round({stat}, {K_STAT_DECIMALS})" for stat in ("precision", "recall", "f1")}
V11_DERIVED: dict[str, str] = {"window_acts": window_rows("sae_num"), "absorption_split_acts": split_act_rows("sae_num", "task"),
                               "latent_letter_cos": cos_block_rows(listed_cosines("task"))}
# Schema v13 records the split-latent rule and measures the other rule beside it (method sensitivity): every older
# result used SAEBench's rule ('l1') alone, so the other rule's columns stay NULL; main_in_split is read off the row.
SPLIT_RULE_DEFAULTS = {("sae_absorption", "split_rule"): "'l1'",
                       ("sae_letters", "main_in_split"): "list_contains(split_latents, main_latent)"}
MIGRATIONS = {"6": (V6_DEFAULTS | K_STATS_ROUNDED, V6_DERIVED), "7": (K_STATS_ROUNDED, V7_DERIVED),
              "8": (K_STATS_ROUNDED, V9_DERIVED), "9": (K_STATS_ROUNDED, V10_DERIVED),
              "10": (K_STATS_ROUNDED, V11_DERIVED), "11": (K_STATS_ROUNDED, V11_DERIVED), "12": ({}, {}),
              "13": ({}, {})}
# Values for a column the old table lacks (every version before it came), where NULL would not do
MISSING_COLUMN_DEFAULTS = SPLIT_RULE_DEFAULTS
TRUTH_TABLES = ("truth_features", "truth_words", "truth_latents")
COMPUTED_TABLES = ("latent_scores", "score_validation")
CONFIG_TABLES = ("probe_runs", "sae_absorption")  # tables whose `config` is a JSON AbsorptionConfig


def config_with_task(config: str) -> str:
    """A stored first-letter AbsorptionConfig (JSON) as v10 writes it: with its task, and its prompt's answer
    format (" {letter}", upper-cased) as the classes and answers it produced."""
    data = json.loads(config)
    data.setdefault("task", FIRST_LETTER.name)
    prompts = data.get("prompts", {})
    if prompts.get("answer") == " {letter}":  # another format asked for other answers: left unmatched, never reused
        del prompts["answer"]
        prompts.update(classes=list(FIRST_LETTER.classes), answers=list(FIRST_LETTER.answers))
    return json.dumps(data, sort_keys=True)


def rewrite_configs(con: duckdb.DuckDBPyConnection) -> None:
    for table in CONFIG_TABLES:
        for (config,) in con.execute(f"SELECT DISTINCT config FROM {table}").fetchall():  # names are ours
            con.execute(f"UPDATE {table} SET config = ? WHERE config = ?", [config_with_task(config), config])

def renumbered(column: str, old_columns: set[str]) -> str | None:
    """sae_num (other_sae_num) of a table whose old rows name the SAE by key (other_sae_key)."""
    key = column.replace("sae_num", "sae_key")
    return sae_num("o", key) if column.endswith("sae_num") and key in old_columns else None


def migrate(path: Path, log=print, discard_work: bool = False) -> bool:
    """Brings `path` to this schema version. Returns False when it already is; raises SchemaMismatchError
    when no migration starts from its version (or a newer explorer wrote it)."""
    with writer_lock(path):
        return migrate_locked(path, log, discard_work)


def migrate_locked(path: Path, log, discard_work: bool) -> bool:
    version = stored_schema_version(path)
    if version == SCHEMA_VERSION:
        log(f"{path} is already at schema v{SCHEMA_VERSION}")
        return False
    if is_newer_schema(version):
        raise SchemaMismatchError(newer_schema_message(path, version))
    if version not in MIGRATIONS:
        raise SchemaMismatchError(f"{path} has schema v{version}: no migration to v{SCHEMA_VERSION} starts there. "
                                  "Rebuild it with `python -m precompute build --fresh`.")
    defaults, derived = MIGRATIONS[version]
    inputs = {"command": "migrate", "from_version": version}
    with snapshot(path) as source:  # the target is replaced at the end; read from a stable copy
        with atomic_database(path, start_from_existing=False, log=log, inputs=inputs, discard_work=discard_work,
                             resumable=False) as con:
            con.execute("ATTACH ? AS old (READ_ONLY)", [str(source)])
            copy_tables(con, defaults, derived, log)
            rewrite_configs(con)
            run_scores_stage(con, log=log)
            work_keys = list(WORK_META_KEYS)
            con.execute("DELETE FROM meta WHERE key NOT IN (SELECT unnest(?::VARCHAR[]))", [work_keys])
            # a database migrated before says so in its own migrated_from: this migration's replaces it
            con.execute("INSERT INTO meta SELECT key, value FROM old.meta WHERE key NOT IN "
                        "(SELECT unnest(?::VARCHAR[])) AND key NOT IN ('schema_version', 'migrated_from')", [work_keys])
            con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('migrated_from', ?)", [SCHEMA_VERSION, version])
            con.execute("DETACH old")
    log(f"{path}: schema v{version} -> v{SCHEMA_VERSION}")
    return True


def copy_tables(con: duckdb.DuckDBPyConnection, defaults: dict[tuple[str, str], str], derived: dict[str, str],
                log=print) -> None:
    own = current_catalog(con)
    old_tables = set(catalog_tables(con, "old"))
    # sae_numbers first: the other tables' SAE numbers are looked up in it
    for table in sorted(catalog_tables(con, own), key=lambda name: name != "sae_numbers"):
        if table == "meta":
            continue
        if table in derived:
            step = derived[table]
            step(con) if callable(step) else con.execute(step)
        elif table in COMPUTED_TABLES and table not in old_tables:
            continue  # filled from the SAEs' weights once every table is copied
        elif table in TRUTH_TABLES and table not in old_tables:
            log(f"  {table}: new in v{SCHEMA_VERSION}, left empty (only a toy model's build writes it)")
        elif table in old_tables:
            old_columns = set(table_columns(con, "old", table))
            columns = table_columns(con, own, table)
            values = [defaults[(table, column)] if (table, column) in defaults else column if column in old_columns
                      else MISSING_COLUMN_DEFAULTS.get((table, column))
                      or (TASK_DEFAULT if column == "task" else renumbered(column, old_columns) or "NULL")
                      for column in columns]
            # names and expressions come from the two schemas and the tables above, never from data
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM old.{table} o "
                        "ORDER BY o.rowid")
        else:
            log(f"  {table}: new in v{SCHEMA_VERSION}, left empty (needs a model pass: the next `build` of its SAEs "
                "fills it)")

