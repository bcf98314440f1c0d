"""The absorption stage of `python -m precompute build`: SAEs grouped by hook, the shared per-hook
work done once per group, each SAE written in its own transaction (a crash keeps finished SAEs)."""

from __future__ import annotations

from itertools import groupby

import duckdb
import numpy as np

from precompute import database as db
from precompute.absorption.probe import LinearProbe
from precompute.absorption.prompts import LETTERS
from precompute.absorption.run import AbsorptionConfig, compute_hook_data, compute_sae_absorption
from precompute.absorption.tables import config_json, hook_tables, sae_tables
from precompute.sae_loading import SAESpec, hook_layer, load_sae, sae_hook_name


def stored_probe(con: duckdb.DuckDBPyConnection, model_name: str, hook_name: str, config: AbsorptionConfig) -> LinearProbe | None:
    rows = db.stored_probe_rows(con, model_name, hook_name, config_json(config))
    if [letter for letter, _, _ in rows] != list(LETTERS):
        return None
    return LinearProbe(np.array([w for _, w, _ in rows], dtype=np.float32), np.array([b for _, _, b in rows], dtype=np.float32))


def run_absorption_stage(con: duckdb.DuckDBPyConnection, specs: list[SAESpec], model, model_name: str,
                         config: AbsorptionConfig, force: bool, device: str = "cpu", log=print) -> dict[str, dict[str, float]]:
    """Absorption results for every SAE in `specs` that lacks them (or all, with force).
    Returns the seconds per stage, keyed 'hook:<name>' for shared work and by SAE key."""
    done = db.existing_absorption_keys(con)
    todo = [s for s in specs if force or s.key not in done]
    for spec in specs:
        if spec not in todo:
            log(f"skip absorption for {spec.key}: already in the database (use --force to recompute)")
    loaded = [(spec, load_sae(spec, device=device)) for spec in todo]
    timings: dict[str, dict[str, float]] = {}
    by_hook = lambda item: sae_hook_name(item[1])  # noqa: E731
    for hook_name, group in groupby(sorted(loaded, key=by_hook), key=by_hook):
        group = list(group)
        # Reuse the stored probe unless every SAE measured against it is being recomputed.
        others_keep_probe = bool(done - {spec.key for spec, _ in group}) and not force
        reuse = stored_probe(con, model_name, hook_name, config) if others_keep_probe else None
        hook = compute_hook_data(model, model_name, hook_name, hook_layer(hook_name), config, stored_probe=reuse, log=log)
        timings[f"hook:{hook_name}"] = hook.seconds
        if reuse is None:
            con.execute("BEGIN TRANSACTION")
            db.delete_hook_probe(con, model_name, hook_name)
            for table, data in hook_tables(hook, config, model.tokenizer).items():
                db.insert_arrow(con, table, data)
            con.execute("COMMIT")
        for spec, sae in group:
            result = compute_sae_absorption(spec.key, sae, model, hook, config, log=log)
            con.execute("BEGIN TRANSACTION")
            db.delete_absorption(con, spec.key)
            for table, data in sae_tables(result, config).items():
                db.insert_arrow(con, table, data)
            con.execute("COMMIT")
            timings[spec.key] = result.seconds
    return timings
