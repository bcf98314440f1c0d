"""One locked-down, read-only DuckDB connection to an explorer database, and the reader every subject class of
ExplorerDB builds on."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from backend import queries as q
from contract.schema import (
    REQUIRED_META_KEYS,
    SCHEMA_VERSION,
    is_newer_schema,
    newer_schema_message,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = REPO_ROOT / "assets" / "demo.duckdb"
DB_ENV_VAR = "EXPLORER_DB"
EXPECTED_TABLES = {"meta", "vocab", "sequences", "saes", "latents", "contexts", "window_acts"}


class DatabaseError(Exception):
    """A database the app cannot use, with a message meant for the person running it."""


def database_path() -> Path:
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


def database_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime in ns, size) of the file now at `path`, None when there is none: a build, merge or migrate
    replaces the file by a rename, which changes all three, so a cache keyed on this follows the file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


CATALOG = "explorer"  # the database file's name inside the connection
USE_CATALOG = f"USE {CATALOG}"  # every cursor starts in the in-memory catalog: queries name no catalog


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only, no external access (no httpfs, no reading other local files from SQL).

    The file is ATTACHed to a private in-memory database instead of opened by `duckdb.connect(path)`: DuckDB keeps
    one instance per path and process, so once a build had renamed a new file over the path, a new connection
    would still have read the replaced file for as long as any old one lived. External access is switched off
    once the file is attached, and the configuration locked."""
    if not path.exists():
        raise DatabaseError(
            f"No explorer database at {path}. Build one with `python -m precompute build ...` "
            f"or point {DB_ENV_VAR} at an existing file."
        )
    con = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                             "autoinstall_known_extensions": False})
    try:
        con.execute(f"ATTACH ? AS {CATALOG} (READ_ONLY)", [str(path)])
        con.execute(USE_CATALOG)
        con.execute("SET enable_external_access = false")
        # DuckDB keeps the attached file itself readable and writable through SQL (DETACH, then ATTACH it again
        # read-write): no local file at all after the attach
        con.execute("SET disabled_filesystems = 'LocalFileSystem'")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as error:
        con.close()
        raise DatabaseError(f"{path} is not a readable DuckDB database: {first_line(error)}") from error
    return con


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class Reader:
    """One read-only connection and its cursors; the subject classes (backend/saes.py, latents.py, absorption.py,
    tokens.py) read through it. Thread-safe: each query uses its own cursor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = connect_read_only(path)
        self._lock = threading.Lock()
        self.meta = self._check_schema()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cursor = self._con.cursor()
        cursor.execute(USE_CATALOG)
        return cursor

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).fetchall()
        finally:
            cursor.close()

    def _frame(self, sql: str, params: Sequence = ()) -> pd.DataFrame:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, list(params)).df()
        finally:
            cursor.close()

    def _check_schema(self) -> dict[str, str]:
        tables = {row[0] for row in self._rows(q.TABLE_NAMES)}
        if "meta" not in tables:
            raise DatabaseError(f"{self.path} has no `meta` table: it was not written by `python -m precompute`.")
        meta = dict(self._rows(q.META))
        missing = [key for key in REQUIRED_META_KEYS if key not in meta]
        if missing:
            raise DatabaseError(f"{self.path} is incomplete (meta lacks {', '.join(missing)}); rebuild it.")
        if is_newer_schema(meta["schema_version"]):
            raise DatabaseError(newer_schema_message(self.path, meta["schema_version"]) + ".")
        if meta["schema_version"] != SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path} has schema version {meta['schema_version']}, this explorer reads version "
                f"{SCHEMA_VERSION}. Upgrade it with `python -m precompute migrate --db {self.path}` (no model pass), "
                "or rebuild it with this version's `python -m precompute build`."
            )
        if EXPECTED_TABLES - tables:
            raise DatabaseError(f"{self.path} lacks tables {sorted(EXPECTED_TABLES - tables)}; rebuild it.")
        return meta

    def close(self) -> None:
        self._con.close()

    def has_table(self, name: str) -> bool:
        return self._rows(q.TABLE_EXISTS, [name])[0][0] > 0
