"""Meta-only edits of a finished database, through the writer like any build (a work copy renamed into place)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from contract.schema import DEFAULT_SAE_META_KEY
from precompute.storage.writer import INSERT_META, RefusedInput, atomic_database, sae_keys_in


def set_default_sae(target: Path, sae_key: str, log=print) -> None:
    """Records the SAE the pages open when the URL names none."""
    keys = sae_keys_in(target)
    if sae_key not in keys:  # before any file is written
        known = f"its SAEs: {', '.join(sorted(keys))}" if keys else "it holds no SAEs"
        raise RefusedInput(f"--sae {sae_key!r} is not an SAE of {target} ({known})")
    with atomic_database(target, start_from_existing=True, log=log, inputs={"command": "default-sae"},
                         allowed_saes=set(), resumable=False) as con:
        con.execute(INSERT_META, [DEFAULT_SAE_META_KEY, sae_key])
        # a new version of the file: an interrupted build that started from the old one must not resume over it
        con.execute(INSERT_META, ["created_at", datetime.now(timezone.utc).isoformat(timespec="seconds")])
    log(f"{target}: pages open {sae_key} when the URL names no SAE")
