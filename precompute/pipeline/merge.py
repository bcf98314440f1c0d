"""Merging databases built apart (one build per hook, on several processes or machines) into one: every
SAE of the other database that the target lacks is copied with all its rows, with the probe runs its
results point at, the corpus rows its contexts use and the vocabulary; an SAE both hold gets the other's results
for the absorption tasks the target lacks for it (a build that added a task); then the cross-SAE matching runs
for any new pair at a shared hook. Crash-safe like a build: the target changes only by the final rename.

    python -m precompute merge --db data/demo.duckdb --from data/layer12.duckdb
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from precompute.storage.writer import (
    META_VALUE,
    SchemaMismatchError,
    atomic_database,
    catalog_tables,
    check_target_schema,
    current_catalog,
    sae_keys_in,
    sae_number,
    table_columns,
    write_meta,
)

# Tables shared by every SAE of a model, deduplicated by their key instead of copied per SAE.
SHARED_KEYS = {"vocab": ("model_name", "token_id"), "sequences": ("model_name", "seq_id"), "tasks": ("task",),
               "truth_features": ("model_name", "feature"), "truth_words": ("model_name", "token_id")}
NEW_SAE_KEYS = "SELECT sae_key FROM other.saes WHERE sae_key NOT IN (SELECT sae_key FROM saes) ORDER BY sae_key"
# (SAE, task) results of SAEs both databases hold that only the other has, as 'key<US>task' (US = chr(31))
NEW_TASK_RESULTS = """
    SELECT o.sae_key || chr(31) || o.task FROM other.sae_absorption o
    WHERE o.sae_key IN (SELECT sae_key FROM saes)
      AND NOT EXISTS (SELECT 1 FROM sae_absorption t WHERE t.sae_key = o.sae_key AND t.task = o.task)
    ORDER BY 1"""


def merge(target: Path, other: Path, log=print, discard_work: bool = False) -> list[str]:
    """Copies the SAEs of `other` that `target` lacks into `target`. Returns their keys."""
    check_target_schema(other)  # both at this code's schema version, or a clear message
    check_target_schema(target)
    # A merge's work is a copy, cheap to redo: its work file is never resumed (a killed merge of several sources, or
    # of Ray shards registered as they finish, would otherwise meet the work of another source), only replaced;
    # a build's interrupted work file is refused unless discard_work.
    with atomic_database(target, start_from_existing=True, log=log, inputs={"command": "merge"},
                         discard_work=discard_work, allowed_saes=sae_keys_in(other), resumable=False) as con:
        con.execute("ATTACH ? AS other (READ_ONLY)", [str(other)])
        keys = [row[0] for row in con.execute(NEW_SAE_KEYS).fetchall()]
        task_results = [row[0] for row in con.execute(NEW_TASK_RESULTS).fetchall()]
        skipped = con.execute("SELECT count(*) FROM other.saes").fetchall()[0][0] - len(keys)
        if skipped:
            log(f"{skipped} SAE(s) of {other} are already in {target}: kept as they are"
                + (f", but for {len(task_results)} task result(s) the target lacks: "
                   + ", ".join(r.replace(chr(31), " ") for r in task_results) if task_results else ""))
        con.execute("BEGIN TRANSACTION")
        for key in keys:  # numbered in the target, after its own SAEs
            sae_number(con, key)
        for table in table_names(con):
            copy_rows(con, table, keys, task_results)
        con.execute("COMMIT")
        con.execute("DETACH other")
        from precompute.pipeline.matching import run_matching_stage

        run_matching_stage(con, log=log)
        from precompute.pipeline.probe_free import run_scores_stage

        run_scores_stage(con, log=log)  # only SAEs the other database lacked scores for (rows are copied)
        if not con.execute(META_VALUE, ["schema_version"]).fetchall():  # a new target: stamped like a build's
            write_meta(con, [])
        merge_models_meta(con, other)
    log(f"merged {len(keys)} SAE(s) from {other} into {target}: {', '.join(keys) or 'none'}")
    return keys


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    mine = catalog_tables(con, current_catalog(con))
    theirs = set(catalog_tables(con, "other"))
    if set(mine) != theirs:
        raise SchemaMismatchError("the two databases hold different tables: rebuild the older one")
    return [t for t in mine if t != "meta"]


def copy_rows(con: duckdb.DuckDBPyConnection, table: str, keys: list[str], task_results: list[str] = ()) -> None:
    """Rows of `table` in `other` that belong to the new SAEs (or their probe runs), to the (SAE, task) results
    in `task_results` ('key<US>task'), or are missing shared rows. Table and column names come from the catalog,
    values are bound."""
    columns = table_columns(con, "other", table)
    names = ", ".join(columns)
    if table == "sae_numbers":
        return  # the new SAEs were numbered in the target (merge)
    if table in SHARED_KEYS:
        same = " AND ".join(f"t.{key} = o.{key}" for key in SHARED_KEYS[table])
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} o "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same})")
    elif "sae_num" in columns:
        copy_renumbered(con, table, columns, keys, task_results if "task" in columns else [])
    elif "sae_key" in columns:
        per_task = " OR sae_key || chr(31) || task IN (SELECT unnest(?::VARCHAR[]))" if "task" in columns else ""
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} "
                    f"WHERE sae_key IN (SELECT unnest(?::VARCHAR[])){per_task}",
                    [keys, task_results] if per_task else [keys])
    elif "probe_run_id" in columns:  # a run is copied once: its id is a hash of everything it holds
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} "
                    f"WHERE probe_run_id NOT IN (SELECT probe_run_id FROM {table})")
    else:
        raise SchemaMismatchError(f"table {table} has no key merge knows: extend precompute/pipeline/merge.py")


def copy_renumbered(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], keys: list[str],
                    task_results: list[str] = ()) -> None:
    """The new SAEs' rows of a table that names SAEs by number: the other database's numbers become the target's
    (through each database's sae_numbers), in the other table's row order."""
    joins = ["JOIN other.sae_numbers o_sae ON o_sae.sae_num = o.sae_num",
             "JOIN sae_numbers t_sae ON t_sae.sae_key = o_sae.sae_key"]
    if "other_sae_num" in columns:
        joins += ["JOIN other.sae_numbers o_other ON o_other.sae_num = o.other_sae_num",
                  "JOIN sae_numbers t_other ON t_other.sae_key = o_other.sae_key"]
    renumbered = {"sae_num": "t_sae.sae_num", "other_sae_num": "t_other.sae_num"}
    values = ", ".join(renumbered.get(column, f"o.{column}") for column in columns)
    per_task = " OR o_sae.sae_key || chr(31) || o.task IN (SELECT unnest(?::VARCHAR[]))" if task_results else ""
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM other.{table} o {' '.join(joins)} "
                f"WHERE o_sae.sae_key IN (SELECT unnest(?::VARCHAR[])){per_task} ORDER BY o.rowid",
                [keys, list(task_results)] if per_task else [keys])


def merge_models_meta(con: duckdb.DuckDBPyConnection, other: Path) -> None:
    """The models of both; the merged database keeps the target's code version and records the other's."""
    mine = dict(con.execute("SELECT key, value FROM meta").fetchall())
    with duckdb.connect(str(other), read_only=True) as theirs_con:
        theirs = dict(theirs_con.execute("SELECT key, value FROM meta").fetchall())
    models = sorted(set(mine.get("models", "").split(",")) | set(theirs.get("models", "").split(",")) - {""})
    con.execute("INSERT OR REPLACE INTO meta VALUES ('models', ?)", [",".join(models)])
    merged = [v for v in (mine.get("merged_code_versions", ""), theirs.get("code_version", "")) if v]
    con.execute("INSERT OR REPLACE INTO meta VALUES ('merged_code_versions', ?)", [",".join(sorted(set(",".join(merged).split(","))))])
