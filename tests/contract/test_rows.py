"""The typed rows (contract/rows.py) are the DDL's columns: every field names a column of the class's table, every
column is a field, the Python type fits the declared SQL type and a NOT NULL column is never `X | None`. A row written
by the writer reads back through the app as the same row."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields
from datetime import datetime
from typing import ClassVar

import duckdb
import pytest

from backend.database import ExplorerDB
from contract import rows
from contract.schema import ddl_statements
from precompute.storage import writer

# DuckDB's information_schema names for the SQL types of contract/sql/schema.sql, by the Python type a field holds.
PYTHON_OF_SQL = {"VARCHAR": str, "INTEGER": int, "SMALLINT": int, "BIGINT": int, "TINYINT": int, "UTINYINT": int,
                 "USMALLINT": int, "UINTEGER": int, "FLOAT": float, "DOUBLE": float, "BOOLEAN": bool,
                 "TIMESTAMP": datetime}


def ddl_column_types() -> dict[str, dict[str, tuple[str, bool]]]:
    """Per table: column -> (SQL type, nullable)."""
    with duckdb.connect() as con:
        for statement in ddl_statements():
            con.execute(statement)
        found = con.execute("SELECT table_name, column_name, data_type, is_nullable = 'YES' "
                            "FROM information_schema.columns ORDER BY table_name, ordinal_position").fetchall()
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, sql_type, nullable in found:
        tables.setdefault(table, {})[column] = (sql_type, nullable)
    return tables


def python_of_sql(sql_type: str) -> object:
    """INTEGER -> int; INTEGER[] and FLOAT[10] -> list[int], list[float]."""
    if match := re.fullmatch(r"(\w+)\[\d*\]", sql_type):
        return list[PYTHON_OF_SQL[match.group(1)]]
    return PYTHON_OF_SQL[sql_type]


def row_mismatches(row_type: type, ddl: dict[str, dict[str, tuple[str, bool]]]) -> list[str]:
    name = row_type.__name__
    if row_type.TABLE not in ddl:
        return [f"{name}: no table {row_type.TABLE!r} in the DDL"]
    columns = dict(ddl[row_type.TABLE])
    if "sae_num" in columns and "sae_key" not in columns:
        columns["sae_key"] = ("VARCHAR", columns.pop("sae_num")[1])  # rows name the SAE by key; stored by number
    columns.pop("sae_num", None)  # saes: the number beside the key, given by the writer
    types = rows.field_types(row_type)
    problems = [f"{name}: field {f} is no column of {row_type.TABLE}" for f in types if f not in columns]
    problems += [f"{name}: column {c} of {row_type.TABLE} is no field" for c in columns if c not in types]
    for field_name, (hint, optional) in types.items():
        if field_name not in columns:
            continue
        sql_type, nullable = columns[field_name]
        if python_of_sql(sql_type) != hint:
            problems.append(f"{name}.{field_name}: {hint} for a {sql_type} column")
        if optional and not nullable:
            problems.append(f"{name}.{field_name}: may be None, but the column is NOT NULL")
        if nullable and not optional:
            problems.append(f"{name}.{field_name}: never None, but the column is nullable (say `| None`)")
    return problems


@pytest.mark.parametrize("row_type", rows.ROW_TYPES, ids=lambda t: t.__name__)
def test_every_row_class_is_its_tables_columns(row_type):
    assert row_mismatches(row_type, ddl_column_types()) == []


def test_a_row_class_that_disagrees_with_the_ddl_is_named():
    """The check itself: a missing column, an extra field, a wrong type and a None where NOT NULL all show."""

    @dataclass(frozen=True)
    class BadProbeFold:
        TABLE: ClassVar[str] = "probe_folds"
        probe_run_id: str
        task: str | None  # NOT NULL column
        fold: float  # SMALLINT column
        letter: str
        weight: list[float]
        bias: float
        n_words: int
        typo: int  # no such column; n_probe_true_positives left out

    found = row_mismatches(BadProbeFold, ddl_column_types())
    assert sorted(found) == sorted([
        "BadProbeFold: field typo is no column of probe_folds",
        "BadProbeFold: column n_probe_true_positives of probe_folds is no field",
        "BadProbeFold.fold: <class 'float'> for a SMALLINT column",
        "BadProbeFold.task: may be None, but the column is NOT NULL",
    ])


def test_arrow_tables_keep_their_types_when_empty_or_all_null():
    table = rows.arrow_table([], rows.ProbeFoldRow)
    assert table.num_rows == 0 and table.schema.field("weight").type.value_type.bit_width == 64
    word = rows.AbsorptionWordRow(sae_key="k", task="t", probe_run_id="r", metric="ablation", letter="a", token_id=3,
                                  fold=0, probe_projection=1.5, absorption_fraction=None,
                                  is_full_absorption=None, is_absorption=True, absorber=None, absorber_act=None,
                                  absorber_score=None)
    table = rows.arrow_table([word], rows.AbsorptionWordRow)
    assert str(table.schema.field("absorber").type) == "int64" and table.column("absorber").null_count == 1


SAE = rows.SaeRow(sae_key="k", model_name="m", hook_name="blocks.0.hook_resid_post", layer=None, architecture="topk",
                  training_architecture="batchtopk", d_in=4, d_sae=8, source="release", path=None,
                  release="gpt2-small-res-jb", sae_id="blocks.0.hook_resid_pre", corpus="c[0:8]", n_tokens=1016,
                  explained_variance=0.5, mse=1.25, l0=3.5, n_dead=1, dead_fraction=0.125, context_left=4,
                  context_right=2, hist_bins=24, created_at=datetime(2026, 12, 3, 8, 0, 0))


def test_a_written_sae_row_reads_back_as_the_same_row(tmp_path):
    """Through the writer (key -> number), DuckDB and pandas (NULL layer -> NaN) and back: every field as written."""
    path = tmp_path / "rows.duckdb"
    with duckdb.connect(str(path)) as con:
        for statement in ddl_statements():
            con.execute(statement)
        writer.write_meta(con, ["m"])
        writer.insert_arrow(con, "saes", rows.arrow_table([SAE], rows.SaeRow))
    db = ExplorerDB(path)
    try:
        read = db.sae("k")
    finally:
        db.close()
    assert read == SAE
    assert all(type(getattr(read, f.name)) in (str, int, float, datetime, type(None)) for f in fields(read))
    assert read.origin == "gpt2-small-res-jb / blocks.0.hook_resid_pre"


def test_field_types_see_through_optional_and_skip_the_table_name():
    types = rows.field_types(rows.SaeRow)
    assert "TABLE" not in types
    assert types["layer"] == (int, True) and types["d_sae"] == (int, False)
    assert types["created_at"] == (datetime, False)
    assert typing.get_origin(rows.field_types(rows.SaeClassRow)["split_latents"][0]) is list
