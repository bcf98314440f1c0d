"""The database schema: DDL file, version, and the meta keys every database carries."""

from __future__ import annotations

from pathlib import Path

SCHEMA_VERSION = "9"
ACTIVATION_LEVELS = 15  # window activations are stored as 1..15 steps of the latent's max (4 bits bit-pack)
DDL_PATH = Path(__file__).parent / "sql" / "schema.sql"
REQUIRED_META_KEYS = ("schema_version", "code_version", "created_at", "models")


def ddl_statements() -> list[str]:
    """The DDL's statements, comments removed first (a comment may hold a ';'; the DDL has no string literals)."""
    text = "\n".join(line.split("--", 1)[0] for line in DDL_PATH.read_text().splitlines())
    return [statement.strip() for statement in text.split(";") if statement.strip()]
