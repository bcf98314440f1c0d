"""What the writers write matches the DDL (contract/sql/schema.sql): every Arrow table a table-building function
hands the writer names only the table's columns (SAEs by key, stored by number where the table says so), and gives
every column the DDL declares NOT NULL without a default. The tiny dashboards build here writes the dashboard, token,
matching and score tables; the absorption stage's build (tests/precompute/absorption/test_stage.py) the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from tests import helpers


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    with helpers.recording_writes() as recorded:
        helpers.build_tiny_database(tmp_path_factory.mktemp("ddl"), n_rows=32)
    return recorded


def test_the_dashboards_build_writes_what_the_ddl_declares(written):
    assert not helpers.ddl_mismatches(written), "\n".join(helpers.ddl_mismatches(written))


def test_the_tiny_build_covers_the_tables_the_absorption_build_does_not(written):
    tables = set(helpers.ddl_columns())
    assert helpers.WRITTEN_BY_SQL | helpers.ABSORPTION_BUILD_TABLES | helpers.TOY_BUILD_TABLES <= tables
    rest = tables - helpers.WRITTEN_BY_SQL - helpers.ABSORPTION_BUILD_TABLES - helpers.TOY_BUILD_TABLES
    assert set(written) >= rest, f"not written by the tiny build: {sorted(rest - set(written))}"


def test_a_mismatch_is_named():
    """The check itself: a column the DDL lacks and a required column left out are both reported."""
    key_only = {"latent_scores": {("sae_key", "latent", "enc_dec_score", "parent_score", "parent_latent")}}
    assert helpers.ddl_mismatches(key_only) == []  # sae_key -> sae_num, as with_sae_numbers does
    wrong = {"latent_scores": {("sae_key", "latent", "enc_dec_score", "typo_score")}, "nope": {("a",)}}
    problems = helpers.ddl_mismatches(wrong)
    assert "nope: written, but the DDL has no such table" in problems
    assert "latent_scores: written with ['typo_score'], which the DDL lacks" in problems
    assert "latent_scores: written without ['parent_score'], NOT NULL without a default in the DDL" in problems


def test_the_recorder_sees_the_writer_by_its_module(tmp_path):
    """The stages call the writer through its module (`db.insert_arrow`), so the recorder sees every write."""
    import duckdb

    from precompute.storage import writer

    with helpers.recording_writes() as recorded, duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        con.execute("CREATE TABLE t (a INTEGER)")
        writer.insert_arrow(con, "t", pa.table({"a": [1]}))
    assert recorded == {"t": {("a",)}}
    root = Path(__file__).resolve().parents[3] / "precompute"
    by_name = [str(path) for path in root.rglob("*.py") if "import insert_arrow" in path.read_text()
               or re.search(r"from precompute\.storage\.writer import [^\n]*\binsert_arrow\b", path.read_text())]
    assert not by_name, f"insert_arrow imported by name (the recorder would miss it): {by_name}"
