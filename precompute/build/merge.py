"""Merging databases built apart (one build per hook, on several processes or machines) into one: every
SAE of the other database that the target lacks is copied with all its rows, with the probe runs its
results point at, the corpus rows its contexts use and the vocabulary; then the cross-SAE matching runs
for any new pair at a shared hook. Crash-safe like a build: the target changes only by the final rename.

    python -m precompute merge --db data/demo.duckdb --from data/layer12.duckdb
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from precompute.storage.writer import (SchemaMismatchError, atomic_database, catalog_tables, check_target_schema,
                                       current_catalog, sae_number, table_columns)

# Tables shared by every SAE of a model, deduplicated by their key instead of copied per SAE.
SHARED_KEYS = {"vocab": ("model_name", "token_id"), "sequences": ("model_name", "seq_id"), "tasks": ("task",)}
NEW_SAE_KEYS = "SELECT sae_key FROM other.saes WHERE sae_key NOT IN (SELECT sae_key FROM saes) ORDER BY sae_key"


def merge(target: Path, other: Path, log=print) -> list[str]:
    """Copies the SAEs of `other` that `target` lacks into `target`. Returns their keys."""
    check_target_schema(other)  # both at this code's schema version, or a clear message
    check_target_schema(target)
    with atomic_database(target, start_from_existing=True, log=log) as con:
        con.execute("ATTACH ? AS other (READ_ONLY)", [str(other)])
        keys = [row[0] for row in con.execute(NEW_SAE_KEYS).fetchall()]
        skipped = con.execute("SELECT count(*) FROM other.saes").fetchall()[0][0] - len(keys)
        if skipped:
            log(f"{skipped} SAE(s) of {other} are already in {target}: kept as they are")
        con.execute("BEGIN TRANSACTION")
        for key in keys:  # numbered in the target, after its own SAEs
            sae_number(con, key)
        for table in table_names(con):
            copy_rows(con, table, keys)
        con.execute("COMMIT")
        con.execute("DETACH other")
        from precompute.build.matching import run_matching_stage

        run_matching_stage(con, log=log)
        from precompute.build.probe_free import run_scores_stage

        run_scores_stage(con, log=log)  # only SAEs the other database lacked scores for (rows are copied)
        merge_models_meta(con, other)
    log(f"merged {len(keys)} SAE(s) from {other} into {target}: {', '.join(keys) or 'none'}")
    return keys


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    mine = catalog_tables(con, current_catalog(con))
    theirs = set(catalog_tables(con, "other"))
    if set(mine) != theirs:
        raise SchemaMismatchError("the two databases hold different tables: rebuild the older one")
    return [t for t in mine if t != "meta"]


def copy_rows(con: duckdb.DuckDBPyConnection, table: str, keys: list[str]) -> None:
    """Rows of `table` in `other` that belong to the new SAEs (or their probe runs), or are missing shared rows.
    Table and column names come from the catalog, values are bound."""
    columns = table_columns(con, "other", table)
    names = ", ".join(columns)
    if table == "sae_numbers":
        return  # the new SAEs were numbered in the target (merge)
    if table in SHARED_KEYS:
        same = " AND ".join(f"t.{key} = o.{key}" for key in SHARED_KEYS[table])
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} o "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same})")
    elif "sae_num" in columns:
        copy_renumbered(con, table, columns, keys)
    elif "sae_key" in columns:
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} "
                    "WHERE sae_key IN (SELECT unnest(?::VARCHAR[]))", [keys])
    elif "probe_run_id" in columns:  # a run is copied once: its id is a hash of everything it holds
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM other.{table} "
                    f"WHERE probe_run_id NOT IN (SELECT probe_run_id FROM {table})")
    else:
        raise SchemaMismatchError(f"table {table} has no key merge knows: extend precompute/build/merge.py")


def copy_renumbered(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], keys: list[str]) -> None:
    """The new SAEs' rows of a table that names SAEs by number: the other database's numbers become the target's
    (through each database's sae_numbers), in the other table's row order."""
    joins = ["JOIN other.sae_numbers o_sae ON o_sae.sae_num = o.sae_num",
             "JOIN sae_numbers t_sae ON t_sae.sae_key = o_sae.sae_key"]
    if "other_sae_num" in columns:
        joins += ["JOIN other.sae_numbers o_other ON o_other.sae_num = o.other_sae_num",
                  "JOIN sae_numbers t_other ON t_other.sae_key = o_other.sae_key"]
    renumbered = {"sae_num": "t_sae.sae_num", "other_sae_num": "t_other.sae_num"}
    values = ", ".join(renumbered.get(column, f"o.{column}") for column in columns)
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM other.{table} o {' '.join(joins)} "
                "WHERE o_sae.sae_key IN (SELECT unnest(?::VARCHAR[])) ORDER BY o.rowid", [keys])


def merge_models_meta(con: duckdb.DuckDBPyConnection, other: Path) -> None:
    """The models of both; the merged database keeps the target's code version and records the other's."""
    mine = dict(con.execute("SELECT key, value FROM meta").fetchall())
    with duckdb.connect(str(other), read_only=True) as theirs_con:
        theirs = dict(theirs_con.execute("SELECT key, value FROM meta").fetchall())
    models = sorted(set(mine.get("models", "").split(",")) | set(theirs.get("models", "").split(",")) - {""})
    con.execute("INSERT OR REPLACE INTO meta VALUES ('models', ?)", [",".join(models)])
    merged = [v for v in (mine.get("merged_code_versions", ""), theirs.get("code_version", "")) if v]
    con.execute("INSERT OR REPLACE INTO meta VALUES ('merged_code_versions', ?)", [",".join(sorted(set(",".join(merged).split(","))))])
