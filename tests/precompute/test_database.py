"""Schema and atomic writes."""

from __future__ import annotations

import duckdb
import pytest

from backend.schema import SCHEMA_VERSION, ddl_statements
from precompute import database as db


def test_ddl_creates_every_table(tmp_path):
    with db.atomic_database(tmp_path / "x.duckdb", start_from_existing=False) as con:
        db.write_meta(con, ["m"])
    with duckdb.connect(str(tmp_path / "x.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    dashboard_tables = {"meta", "vocab", "sequences", "saes", "latents", "contexts", "window_acts"}
    absorption_tables = {
        "probe_runs", "letter_probes", "probe_words", "probe_prefixes",
        "sae_absorption", "sae_letters", "sae_letter_k", "latent_letter_cos", "absorption_words", "latent_matches",
    }
    assert tables == dashboard_tables | absorption_tables
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["models"] == "m" and meta["code_version"] and meta["created_at"]
    assert len([s for s in ddl_statements() if s.lstrip().upper().startswith("CREATE TABLE")]) == len(tables)


def test_crash_leaves_previous_database_untouched(tmp_path):
    target = tmp_path / "x.duckdb"
    with db.atomic_database(target, start_from_existing=False) as con:
        db.write_meta(con, ["first"])
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with db.atomic_database(target, start_from_existing=True) as con:
            db.write_meta(con, ["second"])
            raise RuntimeError("simulated crash mid-build")
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".x.duckdb.tmp*")), "temporary file cleaned up"


def test_crash_on_first_build_leaves_no_database(tmp_path):
    target = tmp_path / "x.duckdb"
    with pytest.raises(KeyboardInterrupt):
        with db.atomic_database(target, start_from_existing=False) as con:
            db.write_meta(con, ["m"])
            raise KeyboardInterrupt
    assert not target.exists()
