"""The explorer and its database file: a running server follows the file when a build, merge or migrate replaces
it; a database it cannot read is one message on the page (not one more in the sidebar); a newer explorer's database
gets "upgrade the explorer", never advice that would destroy it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from contract.schema import SCHEMA_VERSION
from tests import helpers
from tests.app.urls import render, shown_messages

REPO = Path(__file__).resolve().parents[2]


def errors_everywhere(at) -> list[str]:
    """Every error the page and its sidebar show."""
    return [str(e.value) for e in at.error] + [str(e.value) for e in at.sidebar.error]


def test_a_running_explorer_opens_the_database_a_merge_put_in_place(tiny_db: Path, tmp_path: Path, monkeypatch):
    target = tmp_path / "explorer.duckdb"
    shutil.copyfile(tiny_db, target)
    monkeypatch.setenv("EXPLORER_DB", str(target))
    # in one process (one server): the database is opened, cached, and then replaced by a merge's rename
    assert not render("latent", {"sae": "planted", "latent": "1"}).exception
    before = render("latent", {"sae": "third", "latent": str(helpers.PLANTED_LATENT)})
    assert any("Unknown SAE" in m for m in shown_messages(before))
    (tmp_path / "third").mkdir()
    third = helpers.build_tiny_database(tmp_path / "third", keys=("third",))
    # the writer is another process, as in use (and DuckDB refuses a second configuration of one file per process)
    merged = subprocess.run([sys.executable, "-m", "precompute", "merge", "--db", str(target), "--from", str(third)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr
    after = render("latent", {"sae": "third", "latent": str(helpers.PLANTED_LATENT)})
    assert not after.exception and not shown_messages(after)
    assert after.title[0].value == f"Latent {helpers.PLANTED_LATENT}"
    assert "third" in after.sidebar.selectbox[0].options


def with_schema_version(source: Path, path: Path, version: str) -> Path:
    shutil.copyfile(source, path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    return path


@pytest.mark.parametrize("page", ["overview", "latent", "token", "live"])
def test_an_unreadable_database_is_one_message(tmp_path: Path, monkeypatch, page: str):
    path = tmp_path / "bytes.duckdb"
    path.write_bytes(b"not a database at all" * 100)
    monkeypatch.setenv("EXPLORER_DB", str(path))
    at = render(page, {})
    assert not at.exception
    errors = errors_everywhere(at)
    assert len(errors) == 1 and "not a readable DuckDB database" in errors[0], errors


def test_a_newer_database_says_upgrade_the_explorer_and_nothing_that_would_destroy_it(tiny_db: Path, tmp_path: Path,
                                                                                      monkeypatch):
    newer = str(int(SCHEMA_VERSION) + 1)
    monkeypatch.setenv("EXPLORER_DB", str(with_schema_version(tiny_db, tmp_path / "new.duckdb", newer)))
    errors = errors_everywhere(render("overview", {}))
    assert len(errors) == 1, errors
    assert f"written by a newer absorption-explorer (schema {newer}): upgrade the explorer" in errors[0]
    assert "--fresh" not in errors[0] and "migrate" not in errors[0]


def test_an_older_database_says_migrate(tiny_db: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(with_schema_version(tiny_db, tmp_path / "old.duckdb", "11")))
    errors = errors_everywhere(render("overview", {}))
    assert len(errors) == 1 and "python -m precompute migrate" in errors[0], errors
