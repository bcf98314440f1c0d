"""Every table's key stays unique without a PRIMARY KEY index (contract/sql/schema.sql says why): each table's
comment names the columns its writers keep unique, `-- unique (a, b)`, and here every such key is checked on the
shipped demo database (every real build stage wrote it) and on a fresh sweep build."""

from __future__ import annotations

import re

import duckdb
import pytest

from backend.database import DEFAULT_DB_PATH, ExplorerDB
from contract.schema import DDL_PATH
from tests import helpers

TABLE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
UNIQUE = re.compile(r"unique \(([^)]*)\)")


def declared_keys() -> list[tuple[str, tuple[str, ...]]]:
    """(table, key columns) for every `unique (...)` a table's DDL names, in file order."""
    return [(table, tuple(c.strip() for c in key.split(",")))
            for table, body in TABLE.findall(DDL_PATH.read_text()) for key in UNIQUE.findall(body)]


def duplicated(con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...]) -> int:
    """Key values held by more than one row (names from the DDL file)."""
    columns = ", ".join(key)
    return con.execute(f"SELECT count(*) FROM (SELECT {columns} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
                       ).fetchone()[0]


def test_every_table_without_a_primary_key_names_its_unique_key():
    keyed = {table for table, _ in declared_keys()}
    tables = {table for table, _ in TABLE.findall(DDL_PATH.read_text())}
    assert tables - keyed == {"meta", "tasks"}  # the two an upsert needs a PRIMARY KEY on
    assert ("sae_numbers", ("sae_num",)) in declared_keys() and ("window_acts", ("sae_num", "latent", "context", "rel_pos")) in declared_keys()


def test_the_demo_database_keeps_every_key_unique():
    demo = ExplorerDB(DEFAULT_DB_PATH)  # the app's own connection settings: other tests hold the file open so
    try:
        filled = [(t, k) for t, k in declared_keys() if demo._rows(f"SELECT count(*) FROM {t}")[0][0]]
        assert len(filled) >= 25
        columns = lambda key: ", ".join(key)  # noqa: E731
        assert [(t, k) for t, k in filled
                if demo._rows(f"SELECT count(*) FROM (SELECT {columns(k)} FROM {t} GROUP BY ALL HAVING count(*) > 1)")[0][0]
                ] == []
    finally:
        demo.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return helpers.build_sweep_database(tmp_path_factory.mktemp("keys"), second_run=("w16",), second_task=True)


def test_a_fresh_build_keeps_every_key_unique(sweep):
    with duckdb.connect(str(sweep), read_only=True) as con:
        filled = [(t, k) for t, k in declared_keys() if con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]]
        assert len(filled) >= 20
        assert [(t, k) for t, k in filled if duplicated(con, t, k)] == []


def test_a_duplicated_row_is_reported(sweep, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(sweep.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute("INSERT INTO window_acts SELECT * FROM window_acts LIMIT 1")
        assert duplicated(con, "window_acts", ("sae_num", "latent", "context", "rel_pos")) == 1
