"""The absorption stage of `python -m precompute build`: for each task, SAEs grouped by hook, the shared per-hook
work done once per group and task, each SAE's results for a task written in its own transaction (a crash keeps
finished SAEs)."""

from __future__ import annotations

import duckdb
import numpy as np

from precompute.absorption.activations import kept_prefix_caches
from precompute.absorption.config import AbsorptionConfig, config_for_task
from precompute.absorption.hook import StoredProbes, compute_hook_data
from precompute.absorption.measure import compute_sae_absorption
from precompute.absorption.probe import LinearProbe
from precompute.absorption.tables import config_json, hook_tables, probe_run_id, sae_tables
from precompute.absorption.tasks import get_task
from precompute.loading.sae import SAESpec, hook_layer, load_sae, specs_by_hook
from precompute.storage import writer as db
from precompute.util.faults import crash_point


def probe_from_rows(rows: list[tuple], classes: tuple[str, ...]) -> LinearProbe | None:
    """A probe from (class, weight, bias) rows in the task's class order, or None unless they are exactly its classes."""
    by_class = {label: (weight, bias) for label, weight, bias in rows}
    if len(rows) != len(classes) or set(by_class) != set(classes):
        return None
    return LinearProbe(np.array([by_class[c][0] for c in classes], dtype=np.float32),
                       np.array([by_class[c][1] for c in classes], dtype=np.float32))


def stored_probe(con: duckdb.DuckDBPyConnection, model_name: str, hook_name: str, config: AbsorptionConfig,
                 excluding: list[str]) -> tuple[str, StoredProbes] | None:
    stored = db.stored_probe_run(con, model_name, hook_name, config_json(config), excluding)
    if stored is None:
        return None
    run_id, shown_rows, fold_rows = stored
    classes = config.prompts.classes
    probe = probe_from_rows(shown_rows, classes)
    folds = [probe_from_rows([(letter, w, b) for f, letter, w, b in fold_rows if f == fold], classes)
             for fold in range(config.fold_count)]
    if probe is None or any(p is None for p in folds):
        return None
    return run_id, StoredProbes(probe, folds)


def absorption_todo(con: duckdb.DuckDBPyConnection, specs: list[SAESpec], config: AbsorptionConfig, force: bool,
                    log=print) -> list[SAESpec]:
    """SAEs to measure for `config`'s task: those without results for it, or all with force. An SAE measured
    with another config keeps its results (and the probe run they point at) unless forced."""
    measured = db.absorption_configs(con)
    wanted = config_json(config)
    todo = []
    of_task = "" if config.task == "first_letter" else f" ({config.task})"
    for spec in specs:
        stored = measured.get((spec.key, config.task))
        if force or stored is None:
            todo.append(spec)
        elif stored == wanted:
            log(f"skip absorption for {spec.key}{of_task}: already in the database (use --force to recompute)")
        else:
            log(f"skip absorption for {spec.key}{of_task}: already measured with another absorption config, "
                "against its own probe run (use --force to remeasure it with this one)")
    return todo


def write_probe_run(con: duckdb.DuckDBPyConnection, hook, config: AbsorptionConfig, tokenizer) -> str:
    """A new probe run beside any other at the hook, in one transaction. Returns its id."""
    run_id = probe_run_id(hook, config)
    con.execute("BEGIN TRANSACTION")
    db.write_task(con, get_task(config.task))
    db.delete_probe_run(con, run_id)  # the same id holds the same rows (a rerun after a crash)
    for table, data in hook_tables(hook, config, tokenizer, run_id).items():
        db.insert_arrow(con, table, data)
    con.execute("COMMIT")
    return run_id


def run_absorption_stage(con: duckdb.DuckDBPyConnection, specs: list[SAESpec], model, model_name: str,
                         config: AbsorptionConfig, force: bool, device: str = "cpu", log=print,
                         tasks: tuple[str, ...] = ("first_letter",)) -> dict[str, dict[str, float]]:
    """Absorption results, for each task, for every SAE in `specs` that lacks them (or all, with force).
    Returns the seconds per stage, keyed 'hook:<name>' for shared work and by SAE key (first_letter), with
    ':<task>' appended for the other tasks."""
    timings: dict[str, dict[str, float]] = {}
    # every hook, task and SAE runs prompts from the same prefixes: each prefix's keys and values are computed once
    with kept_prefix_caches(model) as prefixes:
        for task in tasks:
            suffix = "" if task == "first_letter" else f":{task}"
            for key, seconds in run_task(con, specs, model, model_name, config_for_task(config, task), force, device,
                                         log).items():
                timings[key + suffix] = seconds
    if prefixes.hits or prefixes.misses:
        log(f"prefix caches: {prefixes.misses} computed, {prefixes.hits} reused")
    return timings


def run_task(con: duckdb.DuckDBPyConnection, specs: list[SAESpec], model, model_name: str, config: AbsorptionConfig,
             force: bool, device: str = "cpu", log=print) -> dict[str, dict[str, float]]:
    todo = absorption_todo(con, specs, config, force, log)
    timings: dict[str, dict[str, float]] = {}
    # the model check reads the model's answer, not the hook: one hook's answers stand for the others' (the same
    # prompts and, in this build, the same loaded model)
    answers: dict[int, bool] | None = None
    for hook_name, group in sorted(specs_by_hook(todo).items(), key=lambda item: item[0]):
        # Reuse the stored probe of this config (while SAEs other than these point at it, or a killed build
        # left it), so SAEs measured in different builds share one probe run and a resumed build skips the
        # shared per-hook work.
        reuse = stored_probe(con, model_name, hook_name, config, [spec.key for spec in group])
        hook = compute_hook_data(model, model_name, hook_name, hook_layer(hook_name), config,
                                 stored=reuse[1] if reuse else None, log=log, stored_answers=answers)
        if answers is None and hook.model_correct:
            answers = {hook.prompts.words[i].token_id: right for i, right in hook.model_correct.items()}
        timings[f"hook:{hook_name}"] = hook.seconds
        run_id = reuse[0] if reuse else write_probe_run(con, hook, config, model.tokenizer)
        log(f"{hook_name}: probe run {run_id} ({'reused' if reuse else 'new'})")
        for spec in group:
            # loaded when its turn comes, and dropped after: the shared per-hook work is the word activations,
            # so peak memory is one SAE's however many SAEs share the hook
            sae = load_sae(spec, device=device)
            result = compute_sae_absorption(spec.key, sae, model, hook, config, log=log)
            del sae
            con.execute("BEGIN TRANSACTION")
            db.delete_absorption(con, spec.key, config.task)
            for table, data in sae_tables(result, config, run_id).items():
                db.insert_arrow(con, table, data)
            db.delete_unreferenced_probe_runs(con, model_name, hook_name, config.task)
            con.execute("COMMIT")
            crash_point(f"after-absorption:{spec.key}" + ("" if config.task == "first_letter" else f":{config.task}"))
            timings[spec.key] = result.seconds
    return timings
