"""The explorer's read-only access to one database: `ExplorerDB` composes the reads by subject (SAEs, latents,
absorption, tokens: one module each) over one locked-down connection (backend/connection.py). The pages call these
reads through views/reads.py, one typed and cached function per read."""

from __future__ import annotations

from backend.absorption import AbsorptionReads, TaskInfo, absorber
from backend.connection import (
    CATALOG,
    DB_ENV_VAR,
    DEFAULT_DB_PATH,
    EXPECTED_TABLES,
    REPO_ROOT,
    USE_CATALOG,
    DatabaseError,
    connect_read_only,
    database_identity,
    database_path,
)
from backend.latents import Context, Latent, LatentReads, LatentRoles, LatentScores, window_levels
from backend.saes import SaeReads
from backend.tokens import TokenLetterRates, TokenReads, TokenRunningText, running_text_row
from contract.rows import plain_row

__all__ = ["CATALOG", "DB_ENV_VAR", "DEFAULT_DB_PATH", "EXPECTED_TABLES", "REPO_ROOT", "USE_CATALOG", "Context",
           "DatabaseError", "ExplorerDB", "Latent", "LatentRoles", "LatentScores", "TaskInfo", "TokenLetterRates",
           "TokenRunningText", "absorber", "connect_read_only", "database_identity", "database_path", "plain_row",
           "running_text_row", "window_levels"]


class ExplorerDB(SaeReads, LatentReads, AbsorptionReads, TokenReads):
    """Read-only access to one explorer database: every read of every subject, on one connection."""
