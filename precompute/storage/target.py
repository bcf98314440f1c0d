"""What a command may do with a database path, checked before any work and in one line each: a folder, an empty,
foreign, truncated or damaged file, a DuckDB database that the explorer did not write, another schema version.
Reads only (DuckDB read-only); nothing here writes."""

from __future__ import annotations

from pathlib import Path

from contract.schema import SCHEMA_VERSION, is_newer_schema, newer_schema_message
from precompute.util.messages import first_line

DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file
META_TABLE = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
SCHEMA_VERSION_OF = "SELECT value FROM meta WHERE key = 'schema_version'"


class DatabaseFileError(ValueError):
    """A database path a command cannot use, in one line."""


def check_duckdb_file(path: Path, option: str = "--db") -> None:
    """An existing path that holds a DuckDB database (not a folder, an empty or foreign file)."""
    if path.is_dir():
        raise DatabaseFileError(f"{option} {path} is a folder; give the path of a .duckdb file")
    if not path.is_file():
        raise DatabaseFileError(f"{option} {path} is not a regular file")
    try:
        with path.open("rb") as handle:
            header = handle.read(12)
    except OSError as error:
        raise DatabaseFileError(f"{option} {path} cannot be read: {error.strerror}") from None
    if not header:
        raise DatabaseFileError(f"{option} {path} is an empty file (0 bytes), not a DuckDB database: remove it or give "
                                "another path")
    if header[8:12] != DUCKDB_MAGIC:
        raise DatabaseFileError(f"{option} {path} is not a DuckDB database (its header is not DuckDB's): give another "
                                "path; nothing was changed")


class DamagedDatabaseError(DatabaseFileError):
    """A DuckDB file (by its header) that cannot be opened, or an explorer database without a schema version."""


def explorer_schema_version(path: Path, option: str = "--db") -> str:
    """The schema version an explorer database records; an error for a damaged file or another DuckDB database."""
    import duckdb

    check_duckdb_file(path, option)
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            if not con.execute(META_TABLE).fetchall()[0][0]:
                raise DatabaseFileError(f"{option} {path} is a DuckDB database that absorption-explorer did not write "
                                        "(it has no meta table): give another path; nothing was changed")
            rows = con.execute(SCHEMA_VERSION_OF).fetchall()
    except duckdb.Error as error:
        raise DamagedDatabaseError(f"{option} {path} is damaged or truncated and cannot be opened "
                                   f"({first_line(error)}): restore it, replace it with `build --fresh`, or give "
                                   "another path") from None
    if not rows:
        raise DamagedDatabaseError(f"{option} {path} records no schema version: it is incomplete; replace it with "
                                   "`build --fresh`")
    return rows[0][0]


def check_build_target(path: Path, fresh: bool) -> None:
    """A build may add to an explorer database of this schema version, or (--fresh) replace one of an older version;
    it never touches a file it did not write, nor one a newer explorer wrote."""
    if not path.exists():
        return
    try:
        version = explorer_schema_version(path)
    except DamagedDatabaseError:
        if fresh:  # a DuckDB file by its header that cannot be read, or an incomplete explorer database
            return
        raise
    if is_newer_schema(version):
        raise DatabaseFileError(newer_schema_message(path, version))
    if version != SCHEMA_VERSION and not fresh:
        raise DatabaseFileError(older_schema_message(path, version))


def older_schema_message(path: Path, version: str) -> str:
    """What a build says of a database an older explorer wrote: migrate keeps its SAEs, --fresh replaces it."""
    return (f"{path} has schema v{version}; this build writes v{SCHEMA_VERSION}: upgrade it first with "
            f"`python -m precompute migrate --db {path}` (keeps its SAEs), or replace it with --fresh")


def check_current_database(path: Path, option: str = "--db") -> None:
    """A database to read or merge from: an explorer database of this schema version."""
    if not path.exists():
        raise DatabaseFileError(f"{option} {path}: no such file")
    version = explorer_schema_version(path, option)
    if is_newer_schema(version):
        raise DatabaseFileError(newer_schema_message(path, version))
    if version != SCHEMA_VERSION:
        raise DatabaseFileError(f"{option} {path} has schema v{version}, this explorer v{SCHEMA_VERSION}: upgrade it with "
                                f"`python -m precompute migrate --db {path}`")


def check_migrate_source(path: Path) -> None:
    """migrate reads any older explorer database; a newer one only a newer explorer can read."""
    if not path.exists():
        raise DatabaseFileError(f"--db {path}: no such file")
    version = explorer_schema_version(path)
    if is_newer_schema(version):
        raise DatabaseFileError(newer_schema_message(path, version))
