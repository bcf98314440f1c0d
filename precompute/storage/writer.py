"""The only writer of the explorer database. Builds atomically: everything is written to a
work file next to the target, which replaces the target only after the last commit, so a crash or
Ctrl-C never leaves a file that the app would trust. Each SAE is committed to the work file in its
own transaction and the work file outlives a crash, so the next build resumes where it stopped."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.fragments import TOKEN_LETTER
from contract.schema import (
    DEFAULT_SAE_META_KEY,
    SCHEMA_VERSION,
    STORAGE_ORDER,
    ddl_statements,
    default_sae_key,
    is_newer_schema,
    newer_schema_message,
)
from contract.schema import SAE_NUM_OF_KEY as NUM  # a bound SAE key -> its number in the large tables
from precompute.storage.lock import BuildInProgressError, writer_lock  # noqa: F401  (BuildInProgressError re-exported)
from precompute.storage.target import older_schema_message
from precompute.util.faults import crash_point, disk_full_point, pause_point
from precompute.util.sizes import FIXED_BYTES, megabytes

INSERT_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
META_VALUE = "SELECT value FROM meta WHERE key = ?"
DELETE_COMPACT_META = "DELETE FROM compact_db.meta WHERE key IN (SELECT unnest(?::VARCHAR[]))"  # compact_copy's copy
MODEL_HAS_VOCAB = "SELECT count(*) FROM vocab WHERE model_name = ?"
EXISTING_SEQUENCES = "SELECT seq_id FROM sequences WHERE model_name = ?"
SAE_NUMBER = "SELECT sae_num FROM sae_numbers WHERE sae_key = ?"
NEW_SAE_NUMBER = "INSERT INTO sae_numbers SELECT ?, coalesce(max(sae_num), 0) + 1 FROM sae_numbers"
DELETE_LATENT_SCORES = f"DELETE FROM latent_scores WHERE sae_num = {NUM}"
DELETE_SCORE_VALIDATION = "DELETE FROM score_validation WHERE sae_key = ?"
# Probe-free scores derive from the dashboards' density, their validation from both: each goes with its source.
DELETE_SAE_ROWS = {
    "score_validation": DELETE_SCORE_VALIDATION,
    "latent_scores": DELETE_LATENT_SCORES,
    "token_letters": f"DELETE FROM token_letters WHERE sae_num = {NUM}",
    "token_latents": f"DELETE FROM token_latents WHERE sae_num = {NUM}",
    "token_occurrences": f"DELETE FROM token_occurrences WHERE sae_num = {NUM}",
    "window_acts": f"DELETE FROM window_acts WHERE sae_num = {NUM}",
    "latent_labels": f"DELETE FROM latent_labels WHERE sae_num = {NUM}",
    "contexts": f"DELETE FROM contexts WHERE sae_num = {NUM}",
    "latents": f"DELETE FROM latents WHERE sae_num = {NUM}",
    "truth_latents": "DELETE FROM truth_latents WHERE sae_key = ?",
    "saes": "DELETE FROM saes WHERE sae_key = ?",
}
SAE_KEYS = "SELECT sae_key FROM saes ORDER BY sae_key"
# Running text: each letter's latents (written by the absorption stage, read by the dashboards pass), the
# model's alphabetic tokens (one optional leading space, then ASCII letters: precompute/absorption/vocab.py),
# and SAEs whose absorption results are newer than their dashboards (their token_letters are missing or stale).
SAE_LETTER_LATENTS = """SELECT letter, main_latent, split_latents FROM sae_letters WHERE sae_key = ? AND task = 'first_letter'
                        ORDER BY letter"""
ALPHABETIC_TOKENS = f"""
    SELECT token_id, {TOKEN_LETTER} AS letter FROM vocab
    WHERE model_name = ? AND regexp_full_match(token, ' ?[A-Za-z]+') ORDER BY token_id"""
LETTERS_NEWER_THAN_DASHBOARDS = """
    SELECT s.sae_key FROM saes s JOIN sae_absorption a ON a.sae_key = s.sae_key AND a.task = 'first_letter'
    WHERE a.created_at > s.created_at ORDER BY s.sae_key"""
# SAEs whose dashboards came before latent_labels (a database migrated from schema v13): a build reruns their pass.
UNLABELLED_SAES = """
    SELECT n.sae_key FROM sae_numbers n JOIN saes s ON s.sae_key = n.sae_key
    WHERE EXISTS (SELECT 1 FROM latents x WHERE x.sae_num = n.sae_num AND x.n_fired > 0)
      AND NOT EXISTS (SELECT 1 FROM latent_labels l WHERE l.sae_num = n.sae_num) ORDER BY n.sae_key"""
VOCAB_TOKENS = "SELECT token_id, token FROM vocab WHERE model_name = ? ORDER BY token_id"
SAES_FOR_MATCHING = "SELECT sae_key, model_name, hook_name, source, path, release, sae_id FROM saes ORDER BY sae_key"
MATCHED_PAIRS = """
SELECT DISTINCT a.sae_key, b.sae_key FROM (SELECT DISTINCT sae_num, other_sae_num FROM latent_matches) m
JOIN sae_numbers a ON a.sae_num = m.sae_num JOIN sae_numbers b ON b.sae_num = m.other_sae_num"""
DELETE_MATCHES = f"DELETE FROM latent_matches WHERE sae_num = {NUM} OR other_sae_num = {NUM}"
ABSORPTION_CONFIGS = "SELECT sae_key, task, config FROM sae_absorption"
ABSORPTION_TABLES_BY_NUM = ("absorption_words", "absorption_split_acts", "latent_letter_cos")
ABSORPTION_TABLES_BY_KEY = ("score_validation", "sae_letter_k", "sae_letter_folds", "sae_letters", "sae_absorption")
DELETE_ABSORPTION_ROWS = {  # every task of the SAE
    **{table: f"DELETE FROM {table} WHERE sae_num = {NUM}" for table in ABSORPTION_TABLES_BY_NUM},
    **{table: f"DELETE FROM {table} WHERE sae_key = ?" for table in ABSORPTION_TABLES_BY_KEY},
}
DELETE_TASK_ABSORPTION_ROWS = {  # one task of the SAE: binds (sae_key, task)
    **{table: f"DELETE FROM {table} WHERE sae_num = {NUM} AND task = ?" for table in ABSORPTION_TABLES_BY_NUM},
    **{table: f"DELETE FROM {table} WHERE sae_key = ? AND task = ?" for table in ABSORPTION_TABLES_BY_KEY},
}
UPSERT_TASK = """INSERT OR REPLACE INTO tasks (task, title, description, classes, answers, prompt_template)
                  VALUES (?, ?, ?, ?, ?, ?)"""
DELETE_PROBE_RUN_ROWS = {
    table: f"DELETE FROM {table} WHERE probe_run_id = ?"
    for table in ("probe_words", "probe_prefixes", "probe_folds", "letter_probes", "probe_runs")
}
# A stored run at a hook with exactly this config that is not referenced only by SAEs being remeasured:
# one that other SAEs still point at, or one no SAE points at yet (left by a build killed after writing it).
STORED_PROBE_RUN = """
    WITH refs AS (SELECT probe_run_id, sae_key NOT IN (SELECT unnest(?::VARCHAR[])) AS kept FROM sae_absorption)
    SELECT r.probe_run_id FROM probe_runs r
    WHERE r.model_name = ? AND r.hook_name = ? AND r.config = ?
      AND (NOT EXISTS (SELECT 1 FROM refs WHERE refs.probe_run_id = r.probe_run_id)
           OR EXISTS (SELECT 1 FROM refs WHERE refs.probe_run_id = r.probe_run_id AND refs.kept))
    ORDER BY r.created_at DESC LIMIT 1"""
STORED_PROBE = "SELECT letter, weight, bias FROM letter_probes WHERE probe_run_id = ? ORDER BY letter"
STORED_FOLD_PROBES = "SELECT fold, letter, weight, bias FROM probe_folds WHERE probe_run_id = ? ORDER BY fold, letter"
UNREFERENCED_PROBE_RUNS = """
    SELECT probe_run_id FROM probe_runs r
    WHERE r.model_name = ? AND r.hook_name = ? AND r.task = ?
      AND NOT EXISTS (SELECT 1 FROM sae_absorption a WHERE a.probe_run_id = r.probe_run_id)"""


CATALOG_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? ORDER BY table_name"
CATALOG_COLUMNS = """SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = ?
                     ORDER BY ordinal_position"""


def current_catalog(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's own database name (an ATTACHed one has the alias it was given)."""
    return con.execute("SELECT current_database()").fetchall()[0][0]


def catalog_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    return [row[0] for row in con.execute(CATALOG_TABLES, [catalog]).fetchall()]


def table_columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [row[0] for row in con.execute(CATALOG_COLUMNS, [catalog, table]).fetchall()]


def code_version() -> str:
    """The git commit the precompute ran from (with '-dirty' for local edits), else 'unknown'."""
    root = Path(__file__).resolve().parents[2]  # the repository (this file: precompute/storage/writer.py)
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


COMPACT_BLOCK_SIZE = 32768  # measured: 40 % smaller than the 256 KiB default for a 4k-latent SAE, and smaller than 16 KiB


def temporary_path(target: Path, stage: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{stage}-{os.getpid()}")


def work_path(target: Path) -> Path:
    """Where a build writes before the rename. Fixed (no PID) so an interrupted build can be resumed; the
    target's writer lock (precompute/storage/lock.py) keeps two commands from writing it at once."""
    return target.with_name(f".{target.name}.building")


def compact_copy(source: Path, destination: Path) -> None:
    """Rewrite the database into a fresh file with small blocks: no free space from deletes and
    re-inserts, partly filled blocks cost 32 KiB instead of 256 KiB, and the tables of STORAGE_ORDER sorted (the
    order they bit-pack best in, whatever order the SAEs were added in)."""
    destination.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS source_db (READ_ONLY)", [str(source)])  # paths bound: quotes, spaces, unicode
        con.execute(f"ATTACH ? AS compact_db (BLOCK_SIZE {COMPACT_BLOCK_SIZE})", [str(destination)])
        con.execute("COPY FROM DATABASE source_db TO compact_db (SCHEMA)")
        disk_full_point("compaction")
        for table in catalog_tables(con, "source_db"):  # names from the catalog; orders from contract/schema.py
            con.execute(f"INSERT INTO compact_db.{table} SELECT * FROM source_db.{table} "
                        f"ORDER BY {STORAGE_ORDER.get(table, 'rowid')}")
        crash_point("compaction")
        # The work file keeps its resume markers until the rename, so a crash before it loses nothing;
        # the finished copy must not carry them.
        con.execute(DELETE_COMPACT_META, [list(WORK_META_KEYS)])
        disk_full_point("detach")
        con.execute("DETACH compact_db")
        con.execute("DETACH source_db")
    finally:
        close_quietly(con)


def remove_database_files(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: Path, log=print) -> None:
    """Compaction copies left by killed builds (`.NAME.compact-PID` whose process is gone)."""
    for path in target.parent.glob(f".{target.name}.compact-*"):
        pid = path.name.rsplit("-", 1)[-1].removesuffix(".wal")
        if pid.isdigit() and not process_alive(int(pid)):
            log(f"removing {path.name}, left by a killed build")
            path.unlink(missing_ok=True)


BUILD_BASE_KEY = "build_base"  # meta key in a work file: the created_at of the target it started from
BUILD_INPUTS_KEY = "build_inputs"  # meta key in a work file: what the command that started it was asked to do (JSON)
WORK_META_KEYS = (BUILD_BASE_KEY, BUILD_INPUTS_KEY)
STARTED = "started_at"  # a key of the recorded inputs that names the run, not what it computes


def target_created_at(target: Path) -> str:
    """The target's meta created_at ('' when there is no target): identifies the version a build started from."""
    if not target.exists():
        return ""
    with duckdb.connect(str(target), read_only=True) as con:
        rows = con.execute(META_VALUE, ["created_at"]).fetchall()
    return rows[0][0] if rows else ""


class SchemaMismatchError(RuntimeError):
    """The target was written with another schema version: rows of this version cannot be added to it."""


class StaleWorkError(RuntimeError):
    """The target's work file holds an interrupted run with other inputs: resuming it would publish its rows."""


class UnrequestedSaesError(RuntimeError):
    """The work file holds rows of SAEs the command was not asked to write: they are not published."""


class RefusedInput(ValueError):
    """An input found unusable once the run had started (before it wrote anything of its own, e.g. an SAE whose
    width is not the model's, known only once the model is loaded): a work file this run created is removed."""


class DiskFullError(RuntimeError):
    """The disk filled up while writing: the partial work file was removed so that it grows no further."""


def stored_schema_version(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(META_VALUE, ["schema_version"]).fetchall()
    return rows[0][0] if rows else "unknown"


def check_target_schema(target: Path) -> None:
    if not target.exists():
        return
    found = stored_schema_version(target)
    if found == SCHEMA_VERSION:
        return
    if is_newer_schema(found):
        raise SchemaMismatchError(newer_schema_message(target, found))
    raise SchemaMismatchError(older_schema_message(target, found))


def what_it_computes(value):
    """The inputs without what changes how, not what, a run computes: batch sizes (a rerun after running out of
    memory takes a smaller one and resumes)."""
    if isinstance(value, dict):
        return {key: what_it_computes(item) for key, item in value.items() if "batch_size" not in key}
    return value


def as_json(inputs: dict | None) -> dict:
    return json.loads(json.dumps(what_it_computes(inputs or {}), sort_keys=True, default=str))


def recorded_inputs(inputs: dict | None) -> str:
    """The inputs as the work file records them: JSON, with the time the run started."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return json.dumps({**as_json(inputs), STARTED: stamp}, sort_keys=True)


def stored_inputs(recorded: str | None) -> dict | None:
    try:
        stored = json.loads(recorded or "")
    except json.JSONDecodeError:
        return None
    if isinstance(stored, dict):
        stored.pop(STARTED, None)
        return stored
    return None


def same_inputs(recorded: str | None, inputs: dict | None) -> bool:
    return stored_inputs(recorded) == as_json(inputs)


def differing_inputs(recorded: str | None, inputs: dict | None) -> list[str]:
    """The names of the inputs on which a work file and this run differ (nested ones as `a.b`)."""
    stored, wanted = stored_inputs(recorded), as_json(inputs)
    if stored is None:
        return ["all (the work file records none)"]

    def walk(a, b, prefix: str) -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [name for key in sorted(set(a) | set(b)) for name in walk(a.get(key), b.get(key), prefix + key + ".")]
        return [] if a == b else [prefix.rstrip(".")]

    return walk(stored, wanted, "")


def describe_inputs(recorded: str | None) -> str:
    """A work file's recorded inputs in a few words, for the message that refuses to resume it."""
    try:
        stored = json.loads(recorded or "")
    except json.JSONDecodeError:
        return "a run by an older version of this code (no recorded inputs)"
    parts = []
    if stored.get("model"):
        parts.append(f"model {stored['model']}")
    if stored.get("saes"):
        parts.append("SAEs " + " ".join(s.split("=", 1)[0] for s in stored["saes"]))
    if stored.get("from"):
        parts.append(f"from {stored['from']}")
    if stored.get("corpus"):
        rows = stored.get("rows") or ["?", "?"]
        parts.append(f"corpus {Path(stored['corpus']).name} rows {rows[0]}:{rows[1]}")
    parts.append(f"started {stored.get(STARTED, 'at an unknown time')}")
    return f"{stored.get('command', 'run')} ({', '.join(parts)})"


def work_file_markers(work: Path) -> tuple[str | None, str | None] | None:
    """(base, recorded inputs) of a work file; None when it cannot be opened (damaged: it is discarded)."""
    try:
        with duckdb.connect(str(work), read_only=True) as con:  # reads its WAL too, and changes no file
            meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", list(WORK_META_KEYS)).fetchall())
    except duckdb.IOException as error:
        if "lock" in str(error).lower():  # a process of an older version, which took no writer lock
            raise BuildInProgressError(f"another build is writing {work}: wait for it to finish, or stop it") from error
        return None
    except duckdb.Error:
        return None
    return meta.get(BUILD_BASE_KEY), meta.get(BUILD_INPUTS_KEY)


def resumable_work(work: Path, target: Path, base: str, inputs: dict | None = None, discard: bool = False) -> bool:
    """Whether to resume an interrupted run's work file. Only one that started from the target as it is now (a
    build that finished in between would otherwise be overwritten) and was asked for the same inputs; one with
    other inputs is refused (StaleWorkError), never resumed or silently deleted, unless `discard`. A damaged work
    file, or one of these inputs from an older target, is not resumed (the caller starts over)."""
    if not work.exists():
        return False
    markers = work_file_markers(work)
    if markers is None:
        return False
    if not same_inputs(markers[1], inputs):
        if discard:
            return False
        raise StaleWorkError(f"{work} holds an interrupted {describe_inputs(markers[1])}, which differs from this one in "
                             f"{', '.join(differing_inputs(markers[1], inputs))}: rerun that command to finish it, or "
                             "add --discard-work to delete it and start this one")
    return markers[0] == base


def sae_keys_in(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute(SAE_KEYS).fetchall()}


WORK_SAE_KEYS = """SELECT sae_key FROM sae_numbers UNION SELECT sae_key FROM saes
                   UNION SELECT sae_key FROM sae_absorption ORDER BY 1"""


def check_only_requested_saes(con: duckdb.DuckDBPyConnection, allowed: set[str]) -> None:
    extra = [row[0] for row in con.execute(WORK_SAE_KEYS).fetchall() if row[0] not in allowed]
    if extra:
        raise UnrequestedSaesError(f"the work file holds rows of SAEs this run was not asked for ({', '.join(extra)}); "
                                   "nothing was published: rerun with --discard-work")


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error).lower()
    return isinstance(error, duckdb.Error) and ("no space left" in text or "disk is full" in text or "disk full" in text)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def disk_full_error(target: Path, written: int, kept_work: Path | None) -> DiskFullError:
    """The message once the partial files are gone: about three times what was written (work file, its WAL and the
    compact copy) or the target, whichever is larger, and what is free now. A work file that was complete (the
    compaction failed) is kept: a rerun with free space resumes from it."""
    needed = 3 * max(written, file_size(target)) + FIXED_BYTES
    free = shutil.disk_usage(target.parent).free
    kept = (f"the finished work file {kept_work.name} is kept: free the space and rerun to publish it" if kept_work
            else "the partial work file was removed")
    return DiskFullError(f"disk full while writing {target}: it needs about {megabytes(needed)} free in {target.parent} "
                         f"({megabytes(free)} free now); {kept}; the target is unchanged")


@contextmanager
def atomic_database(target: Path, start_from_existing: bool, log=print, inputs: dict | None = None,
                    discard_work: bool = False, allowed_saes: set[str] | None = None, resumable: bool = True):
    """Yields a writable connection on a work copy; renames it over `target` on success.

    Holds the target's writer lock throughout. With `start_from_existing`, the current target (if any) is copied
    first so SAEs can be added without recomputing the others. An interrupted run's work file with the same
    `inputs` (what the command was asked to do) is resumed instead: what it committed (whole SAEs) is kept; one
    with other inputs is refused unless `discard_work`. `allowed_saes`: the SAEs the run may add; rows of any other
    (beyond those already in the target) stop it before publishing. On failure the work file stays for a resume,
    except when the disk is full (it is removed); the target never changes."""
    with writer_lock(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        work, compact = work_path(target), temporary_path(target, "compact")
        remove_stale_temporaries(target, log)
        if start_from_existing:
            check_target_schema(target)
        base = target_created_at(target) if start_from_existing else ""
        resume = resumable_work(work, target, base, inputs, discard_work) and resumable
        if work.exists() and not resume:
            log(f"discarding the interrupted run in {work}" + (" (--discard-work)" if discard_work else ""))
        allowed = None if allowed_saes is None else set(allowed_saes) | (sae_keys_in(target) if start_from_existing else set())
        con, work_complete = None, False
        try:
            if resume:
                log(f"resuming the interrupted build in {work}")
            else:
                remove_database_files(work)
                if start_from_existing and target.exists():
                    disk_full_point("copy")
                    shutil.copyfile(target, work)
            con = duckdb.connect(str(work))
            if not resume:
                if not start_from_existing or not target.exists():
                    for statement in ddl_statements():
                        con.execute(statement)
                con.execute(INSERT_META, [BUILD_BASE_KEY, base])
                con.execute(INSERT_META, [BUILD_INPUTS_KEY, recorded_inputs(inputs)])
            pause_point("work-file-open")
            yield con
            if allowed is not None:
                check_only_requested_saes(con, allowed)
            disk_full_point("checkpoint")
            con.execute("CHECKPOINT")
            con.close()
            work_complete = True  # everything is in the closed work file: a failure from here on can resume from it
            compact_copy(work, compact)
            crash_point("before-rename")
            os.replace(compact, target)  # the only moment the target changes
            crash_point("after-rename")
            remove_database_files(work)
        except BaseException as error:
            if con is not None:
                close_quietly(con)
            remove_database_files(compact)
            if is_disk_full(error):
                written = file_size(work) + file_size(Path(str(work) + ".wal"))
                keep = work_complete and resumable  # a complete work file is kept only for a command that resumes
                if not keep:
                    remove_database_files(work)  # a write failed inside it: no resume trusts it, and it grows no more
                raise disk_full_error(target, written, work if keep else None) from error
            if isinstance(error, RefusedInput) and not resume:
                remove_database_files(work)  # this run's own, and nothing of it was computed
            raise


def publish_copy(source: Path, target: Path) -> None:
    """A finished database (a Ray shard) becomes the target whole: copied next to it, then renamed over it, under
    the target's writer lock; a full disk removes the partial copy."""
    with writer_lock(target):
        staging = copy_beside(target, source, "registering")
        os.replace(staging, target)  # atomic: the target appears whole or not at all


def copy_beside(target: Path, source: Path, stage: str) -> Path:
    """`source` copied to a temporary file next to `target`; a failed copy leaves nothing (a full disk: one message)."""
    copy = temporary_path(target, stage)
    try:
        disk_full_point("copy")
        shutil.copyfile(source, copy)
    except BaseException as error:
        copy.unlink(missing_ok=True)
        if is_disk_full(error):
            raise disk_full_error(target, file_size(source), None) from error
        raise
    return copy


def remove_target(target: Path) -> None:
    """`--fresh` for a command that builds the target from parts (the Ray driver): the old target goes first."""
    with writer_lock(target):
        remove_database_files(target)


@contextmanager
def snapshot(target: Path):
    """A read-only copy of the target to read from while the target itself is being replaced (migrate), removed
    afterwards; a full disk removes the partial copy."""
    with writer_lock(target):
        copy = copy_beside(target, target, "migrating-from")
        try:
            yield copy
        finally:
            copy.unlink(missing_ok=True)


def close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Close after a failure: a full disk can make the close's own checkpoint fail too."""
    try:
        con.close()
    except duckdb.Error:
        pass


def write_meta(con: duckdb.DuckDBPyConnection, models: list[str], extra: dict[str, str] | None = None) -> None:
    """The build's stamp. `models` and the `corpus` of `extra` are added to those already recorded: a build that
    adds one model's SAEs to a database keeps naming every model and corpus in it."""
    extra = dict(extra or {})
    if "corpus" in extra:
        extra["corpus"] = ",".join(sorted(set(stored_list(con, "corpus")) | {extra["corpus"]}))
    values = {
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": ",".join(sorted(set(stored_list(con, "models")) | set(models))),
        "producer": "python -m precompute",
    }
    values.update(extra)
    values[DEFAULT_SAE_META_KEY] = chosen_default_sae(con, values.get(DEFAULT_SAE_META_KEY))
    for key, value in values.items():
        if value is not None:
            con.execute(INSERT_META, [key, str(value)])


SAE_SHAPES = "SELECT sae_key, hook_name, layer, d_sae FROM saes ORDER BY sae_key"


def chosen_default_sae(con: duckdb.DuckDBPyConnection, asked: str | None) -> str | None:
    """The SAE the pages open when the URL names none: the one asked for (`--default-sae`), else the one already
    recorded while it is still in the database, else contract.schema.default_sae_key's choice."""
    keys = existing_sae_keys(con)
    if asked is not None:
        if asked not in keys:
            raise UnrequestedSaesError(f"--default-sae {asked!r} is not an SAE of this database ({', '.join(sorted(keys))})")
        return asked
    stored = con.execute(META_VALUE, [DEFAULT_SAE_META_KEY]).fetchall()
    if stored and stored[0][0] in keys:
        return stored[0][0]
    return default_sae_key(con.execute(SAE_SHAPES).fetchall())


def stored_list(con: duckdb.DuckDBPyConnection, key: str) -> list[str]:
    """A comma-separated meta value as a list (empty when absent)."""
    rows = con.execute(META_VALUE, [key]).fetchall()
    return [v for v in rows[0][0].split(",") if v] if rows else []


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """Bulk insert by column name from an Arrow table (no values in SQL text), in the table's row order."""
    data = with_sae_numbers(con, table, data)
    con.register("incoming", data)
    columns = ", ".join(data.column_names)
    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")  # names are ours
    con.unregister("incoming")


def with_sae_numbers(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> pa.Table:
    """The writers name SAEs by key. A table that stores the SAE's number (sae_num, other_sae_num) gets it in
    place of the key, and `saes` gets it beside the key; sae_numbers numbers a key it has not seen yet."""
    stored = set(table_columns(con, current_catalog(con), table))
    for column in [c for c in data.column_names if c.endswith("sae_key")]:
        number = column.replace("sae_key", "sae_num")
        if number not in stored or number in data.column_names:
            continue
        keys = data.column(column)
        distinct = pc.unique(keys)
        numbers = pa.array([sae_number(con, key) for key in distinct.to_pylist()], pa.int32())
        values = pc.take(numbers, pc.index_in(keys, value_set=distinct))
        position = data.column_names.index(column)
        data = data.add_column(position, number, values)
        if column not in stored:
            data = data.drop_columns([column])
    return data


def sae_number(con: duckdb.DuckDBPyConnection, sae_key: str) -> int:
    """The SAE's number in this database: the one it was given when first written, else the next free one."""
    rows = con.execute(SAE_NUMBER, [sae_key]).fetchall()
    if rows:
        return rows[0][0]
    con.execute(NEW_SAE_NUMBER, [sae_key])
    return con.execute(SAE_NUMBER, [sae_key]).fetchall()[0][0]


def delete_sae(con: duckdb.DuckDBPyConnection, sae_key: str) -> None:
    for statement in list(DELETE_ABSORPTION_ROWS.values()) + list(DELETE_SAE_ROWS.values()):
        con.execute(statement, [sae_key])
    con.execute(DELETE_MATCHES, [sae_key, sae_key])


def delete_sae_dashboards(con: duckdb.DuckDBPyConnection, sae_key: str) -> None:
    """The SAE's dashboard rows (and its matches, recomputed by the matching stage); its absorption rows stay."""
    for statement in DELETE_SAE_ROWS.values():
        con.execute(statement, [sae_key])
    con.execute(DELETE_MATCHES, [sae_key, sae_key])


def sae_letter_latents(con: duckdb.DuckDBPyConnection, sae_key: str) -> list[tuple[str, int, list[int]]]:
    """(letter, main latent, split latents) per letter of the SAE's absorption results; [] when it has none."""
    return [(letter, int(main), [int(x) for x in split])
            for letter, main, split in con.execute(SAE_LETTER_LATENTS, [sae_key]).fetchall()]


def alphabetic_tokens(con: duckdb.DuckDBPyConnection, model_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, lower-case first letters) of the model's alphabetic tokens, from its vocab rows."""
    columns = con.execute(ALPHABETIC_TOKENS, [model_name]).fetchnumpy()
    return np.asarray(columns["token_id"], dtype=np.int64), np.asarray(columns["letter"], dtype="U1")


def letters_newer_than_dashboards(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute(LETTERS_NEWER_THAN_DASHBOARDS).fetchall()}


def unlabelled_saes(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute(UNLABELLED_SAES).fetchall()}


def vocab_tokens(con: duckdb.DuckDBPyConnection, model_name: str) -> list[str]:
    """The model's token strings, indexed by token id ('' for an id the vocab rows skip)."""
    rows = con.execute(VOCAB_TOKENS, [model_name]).fetchall()
    tokens = [""] * (rows[-1][0] + 1 if rows else 0)
    for token_id, token in rows:
        tokens[token_id] = token
    return tokens


def existing_sae_keys(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute(SAE_KEYS).fetchall()}


def has_vocab(con: duckdb.DuckDBPyConnection, model_name: str) -> bool:
    return con.execute(MODEL_HAS_VOCAB, [model_name]).fetchall()[0][0] > 0


def existing_sequences(con: duckdb.DuckDBPyConnection, model_name: str) -> set[int]:
    return {row[0] for row in con.execute(EXISTING_SEQUENCES, [model_name]).fetchall()}


def absorption_configs(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(SAE key, task) -> the AbsorptionConfig JSON its stored results were measured with."""
    return {(key, task): config for key, task, config in con.execute(ABSORPTION_CONFIGS).fetchall()}


def delete_absorption(con: duckdb.DuckDBPyConnection, sae_key: str, task: str) -> None:
    """The SAE's results for one task; its other tasks' stay."""
    for statement in DELETE_TASK_ABSORPTION_ROWS.values():
        con.execute(statement, [sae_key, task])


def write_task(con: duckdb.DuckDBPyConnection, task) -> None:
    """The task's row (precompute/absorption/tasks.Task): what the pages read its classes and prompt from."""
    con.execute(UPSERT_TASK, [task.name, task.title, task.description, list(task.classes), list(task.answers),
                              task.template])


def delete_probe_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    for statement in DELETE_PROBE_RUN_ROWS.values():
        con.execute(statement, [run_id])


def delete_unreferenced_probe_runs(con: duckdb.DuckDBPyConnection, model_name: str, hook_name: str,
                                   task: str = "first_letter") -> list[str]:
    """Drop the hook's probe runs no SAE result points at any more (all their SAEs were remeasured). Called
    once an SAE's results point at the hook's current run, so that run is never among them. Only the task's runs: a
    run another task's killed build left stays for that task's rerun to reuse."""
    unused = [row[0] for row in con.execute(UNREFERENCED_PROBE_RUNS, [model_name, hook_name, task]).fetchall()]
    for run_id in unused:
        delete_probe_run(con, run_id)
    return unused


def stored_probe_run(con: duckdb.DuckDBPyConnection, model_name: str, hook_name: str, config: str,
                     excluding: list[str]) -> tuple[str, list[tuple], list[tuple]] | None:
    """(run id, [(letter, weight, bias)] of the shown probe, [(fold, letter, weight, bias)] of the fold probes)
    of a stored run at this hook with exactly this config, unless only SAEs in `excluding` (those being
    remeasured) point at it; None when there is none."""
    rows = con.execute(STORED_PROBE_RUN, [excluding, model_name, hook_name, config]).fetchall()
    if not rows:
        return None
    run_id = rows[0][0]
    return run_id, con.execute(STORED_PROBE, [run_id]).fetchall(), con.execute(STORED_FOLD_PROBES, [run_id]).fetchall()
