"""The app's read-only, locked-down connection and its schema check."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from backend.database import DatabaseError, ExplorerDB
from tests import helpers


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    return helpers.build_tiny_database(tmp_path_factory.mktemp("backend"))


def test_reads_saes_latents_and_contexts(tiny_db):
    db = ExplorerDB(tiny_db)
    sae = db.sae("planted")
    latent = db.latent(sae, helpers.PLANTED_LATENT)
    contexts = db.contexts(sae, helpers.PLANTED_LATENT, latent.max_act)
    assert db.sae_keys() == ["planted", "second"]
    assert latent.n_fired > 0 and len(latent.neighbors) == 7
    top = [c for c in contexts if c.kind == 0]
    assert len(top) == 20
    for c in top:
        peak = c.token_positions.index(c.pos)
        assert c.tokens[peak] == f" t{helpers.PLANTED_TOKEN}"
        assert c.activations[peak] == pytest.approx(latent.max_act)
    db.close()


def test_latent_labels_name_the_planted_token_and_the_search_finds_it(tiny_db):
    db = ExplorerDB(tiny_db)
    sae = db.sae("planted")
    found = db.latent_label(sae, helpers.PLANTED_LATENT)
    planted = f"t{helpers.PLANTED_TOKEN}"
    assert found is not None and found.label.startswith(planted) and found.explanation is None
    assert found.top_tokens[0][0] == f" {planted}" and 0 < found.top_tokens[0][1] <= 1
    assert db.latent_labels_of("planted", [helpers.PLANTED_LATENT, helpers.DEAD_LATENT]) == {
        helpers.PLANTED_LATENT: found.label}  # the dead latent never fired: no label
    assert db.latent_label(sae, helpers.DEAD_LATENT) is None
    hits = db.latents_by_label(planted, "second", limit=50)
    assert ("planted", helpers.PLANTED_LATENT) in set(zip(hits["sae_key"], hits["latent"]))
    assert hits["sae_key"].iloc[0] == "second"  # the SAE asked for first, among whole-word matches
    assert db.latents_by_label("_", None).empty  # LIKE wildcards are taken literally
    assert db.labelled_sae_keys() == {"planted", "second"}
    db.close()


def test_connection_is_read_only_and_cannot_reach_files(tiny_db, tmp_path):
    db = ExplorerDB(tiny_db)
    with pytest.raises(duckdb.Error):
        db._rows("DELETE FROM latents")
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n")
    with pytest.raises(duckdb.Error):
        db._rows("SELECT * FROM read_csv(?)", [str(outside)])
    db.close()


@pytest.mark.parametrize("statement", [
    "USE memory; DETACH explorer; ATTACH '{db}' AS w; CREATE TABLE w.main.pwned (a INT)",  # the file itself, read-write again
    "SELECT * FROM read_blob('{db}')",
    "COPY (SELECT 1) TO '{db}.wal'",
    "COPY (SELECT 1) TO '{out}'",
    "ATTACH '{out}.duckdb' AS other",
    "SET enable_external_access = true",
    "RESET disabled_filesystems",
    "INSTALL httpfs",
])
def test_no_sql_through_the_apps_connection_reaches_a_file(tiny_db, tmp_path, statement):
    """The connection attaches the file to an in-memory database (so a replaced file is read anew); nothing run on
    it may read or write a file, the attached database's own included, nor loosen the settings."""
    copy = tmp_path / "explorer.duckdb"
    shutil.copyfile(tiny_db, copy)
    before = copy.read_bytes()
    db = ExplorerDB(copy)
    with pytest.raises(duckdb.Error):
        db._rows(statement.format(db=copy, out=tmp_path / "out.csv"))  # one cursor runs every statement of it
    db.close()
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explorer.duckdb"]


def test_schema_version_mismatch_is_refused_with_a_message(tiny_db, tmp_path):
    copy = tmp_path / "old.duckdb"
    shutil.copyfile(tiny_db, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError, match="schema version 0"):
        ExplorerDB(copy)


def test_non_database_and_missing_files_get_messages(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError, match="not a readable DuckDB database"):
        ExplorerDB(junk)
    with pytest.raises(DatabaseError, match="No explorer database"):
        ExplorerDB(tmp_path / "missing.duckdb")


def test_database_without_meta_is_refused(tmp_path):
    path = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(DatabaseError, match="no `meta` table"):
        ExplorerDB(path)
