"""`python -m precompute migrate`: a schema-v6 database (SAEBench's 80/20 split, no folds) opens in this
version's explorer after the upgrade, with every row kept and the fold columns saying what v6 did."""

from __future__ import annotations

import duckdb
import pytest

from backend.database import DatabaseError, ExplorerDB
from precompute.database import SchemaMismatchError
from precompute.migrate import migrate
from tests import helpers

V7_ONLY_COLUMNS = {
    "probe_runs": ["split_mode", "n_folds"], "letter_probes": ["fold_direction_cos"], "probe_words": ["fold"],
    "sae_absorption": ["split_mode", "n_folds", "fold_sd_absorption_fraction", "fold_sd_full_absorption",
                       "fold_sd_paper_absorption", "n_unstable_letters"],
    "sae_letters": ["split_stability", "main_stability"], "absorption_words": ["fold"],
}
V7_ONLY_TABLES = ["probe_folds", "sae_letter_folds", "token_latents", "token_letters", "token_occurrences"]


def as_v6(path) -> None:
    """The database as schema v6 wrote it: without the fold columns and tables (sae_letter_k's fold is part
    of its primary key, so that table is rebuilt without it)."""
    with duckdb.connect(str(path)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in V7_ONLY_TABLES:
            if table in tables:
                con.execute(f"DROP TABLE {table}")
        for table, columns in V7_ONLY_COLUMNS.items():
            for column in columns:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("CREATE TABLE k6 AS SELECT * EXCLUDE (fold) FROM sae_letter_k")
        con.execute("DROP TABLE sae_letter_k")
        con.execute("ALTER TABLE k6 RENAME TO sae_letter_k")
        con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")


@pytest.fixture
def v6_database(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("saes", "latents", "sae_letters", "absorption_words", "probe_words", "sae_letter_k")}
    as_v6(path)
    return path, counts


def test_a_v6_database_is_refused_with_the_migrate_command(v6_database):
    path, _ = v6_database
    with pytest.raises(DatabaseError, match="precompute migrate"):
        ExplorerDB(path)


def test_migrate_keeps_every_row_and_marks_it_holdout(v6_database):
    path, counts = v6_database
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)  # opens: the schema version matches
    try:
        for table, n in counts.items():
            assert db._rows(f"SELECT count(*) FROM {table}")[0][0] == n, table
        assert db._rows("SELECT DISTINCT split_mode, n_folds FROM sae_absorption") == [("holdout", 1)]
        assert db._rows("SELECT count(*) FROM probe_words WHERE (fold = 0) <> is_test OR (fold IS NULL) <> NOT is_test")[0][0] == 0
        # one fold per letter, holding exactly the letter's split latents
        assert db._rows("""SELECT count(*) FROM sae_letter_folds f JOIN sae_letters l USING (sae_key, letter)
                           WHERE f.fold = 0 AND f.split_latents = l.split_latents""")[0][0] == counts["sae_letters"]
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("6",)]
        assert not db._rows("SELECT * FROM meta WHERE key = 'build_base'")
    finally:
        db.close()
    assert not migrate(path, log=lambda *_: None)  # already current: nothing to do


def test_no_migration_from_an_unknown_version(v6_database):
    path, _ = v6_database
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatchError, match="--fresh"):
        migrate(path, log=lambda *_: None)
