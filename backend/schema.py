"""The database schema: DDL file, version, and the meta keys every database carries."""

from __future__ import annotations

from pathlib import Path

SCHEMA_VERSION = "6"
ACTIVATION_LEVELS = 15  # window activations are stored as 1..15 steps of the latent's max (4 bits bit-pack)
DDL_PATH = Path(__file__).parent / "sql" / "schema.sql"
REQUIRED_META_KEYS = ("schema_version", "code_version", "created_at", "models")


def ddl_statements() -> list[str]:
    text = "\n".join(line for line in DDL_PATH.read_text().splitlines() if not line.strip().startswith("--"))
    return [statement.strip() for statement in text.split(";") if statement.strip()]
