"""Schema and atomic writes."""

from __future__ import annotations

import time

import duckdb
import pytest

from contract.schema import SCHEMA_VERSION, ddl_statements
from precompute.storage import writer as db


def test_ddl_creates_every_table(tmp_path):
    with db.atomic_database(tmp_path / "x.duckdb", start_from_existing=False) as con:
        db.write_meta(con, ["m"])
    with duckdb.connect(str(tmp_path / "x.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    dashboard_tables = {"meta", "vocab", "sequences", "sae_numbers", "saes", "latents", "latent_labels", "contexts",
                        "window_acts"}
    absorption_tables = {
        "tasks", "probe_runs", "letter_probes", "probe_folds", "probe_words", "probe_prefixes",
        "sae_absorption", "sae_letters", "sae_letter_folds", "sae_letter_k", "latent_letter_cos", "absorption_words",
        "absorption_split_acts", "latent_matches",
    }
    running_text_tables = {"token_occurrences", "token_latents", "token_letters"}
    score_tables = {"latent_scores", "score_validation"}
    truth_tables = {"truth_features", "truth_words", "truth_latents"}  # the toy run's ground truth (v11)
    assert tables == dashboard_tables | absorption_tables | running_text_tables | score_tables | truth_tables
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["models"] == "m" and meta["code_version"] and meta["created_at"]
    assert len([s for s in ddl_statements() if s.lstrip().upper().startswith("CREATE TABLE")]) == len(tables)


def build_with(target, keys: list[str], crash_after: bool = False, fresh: bool = False) -> list[str]:
    """A stand-in build: commits one row per key in its own transaction, like a per-SAE write."""
    messages: list[str] = []
    with db.atomic_database(target, start_from_existing=not fresh, log=messages.append) as con:
        if fresh:
            con.execute("CREATE TABLE done_keys (key VARCHAR)")
        for key in keys:
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO done_keys VALUES (?)", [key])
            con.execute("COMMIT")
        db.write_meta(con, ["m"])
        if crash_after:
            raise RuntimeError("simulated crash mid-build")
    return messages


def stored_keys(path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT key FROM done_keys ORDER BY key").fetchall()]


def test_crash_leaves_previous_database_untouched(tmp_path):
    target = tmp_path / "x.duckdb"
    build_with(target, ["a"], fresh=True)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        build_with(target, ["b"], crash_after=True)
    assert target.read_bytes() == before
    assert db.work_path(target).exists(), "the interrupted build's work is kept for the next run"
    assert not list(tmp_path.glob(".x.duckdb.compact*"))


def test_next_build_resumes_what_the_crashed_one_committed(tmp_path):
    target = tmp_path / "x.duckdb"
    build_with(target, ["a"], fresh=True)
    with pytest.raises(RuntimeError):
        build_with(target, ["b"], crash_after=True)
    messages = build_with(target, ["c"])
    assert any("resuming" in m for m in messages)
    assert stored_keys(target) == ["a", "b", "c"]
    assert not db.work_path(target).exists()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM meta WHERE key = ?", [db.BUILD_BASE_KEY]).fetchone()[0] == 0


def test_work_from_an_older_target_is_not_resumed(tmp_path):
    """A build that finished after the crash changed the target: the stale work file must not overwrite it."""
    target = tmp_path / "x.duckdb"
    build_with(target, ["a"], fresh=True)
    with pytest.raises(RuntimeError):
        build_with(target, ["stale"], crash_after=True)
    stale_work = tmp_path / "stale.duckdb"
    db.work_path(target).rename(stale_work)
    time.sleep(1.1)  # created_at has one-second resolution
    build_with(target, ["b"])
    stale_work.rename(db.work_path(target))
    messages = build_with(target, ["c"])
    assert not any("resuming" in m for m in messages)
    assert stored_keys(target) == ["a", "b", "c"]


def test_crash_on_first_build_leaves_no_database(tmp_path):
    target = tmp_path / "x.duckdb"
    with pytest.raises(KeyboardInterrupt):
        with db.atomic_database(target, start_from_existing=False) as con:
            db.write_meta(con, ["m"])
            raise KeyboardInterrupt
    assert not target.exists()


def test_a_second_build_stops_instead_of_deleting_the_running_ones_work(tmp_path):
    """The work file has a fixed name; a build that finds it locked by another process must leave it alone."""
    import subprocess
    import sys

    target = tmp_path / "x.duckdb"
    build_with(target, ["a"], fresh=True)
    work = db.work_path(target)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                               f"con = duckdb.connect({str(work)!r}); print('ready', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(db.BuildInProgressError, match="another build"):
            build_with(target, ["b"])
        assert work.exists()
    finally:
        holder.kill()
        holder.wait()
    assert stored_keys(target) == ["a"]


def test_adding_to_a_database_of_another_schema_version_is_refused_with_a_message(tmp_path):
    target = tmp_path / "old.duckdb"
    with duckdb.connect(str(target)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    with pytest.raises(db.SchemaMismatchError, match="--fresh"):
        with db.atomic_database(target, start_from_existing=True):
            pass
    with db.atomic_database(target, start_from_existing=False) as con:  # --fresh starts over
        db.write_meta(con, ["m"])
    assert dict(duckdb.connect(str(target), read_only=True).execute("SELECT * FROM meta").fetchall())["schema_version"] \
        == SCHEMA_VERSION


def probe_run_row(con, run_id: str, config: str) -> None:
    con.execute("INSERT INTO probe_runs (probe_run_id, model_name, hook_name, task, config, split_mode, n_folds, n_words, "
                "n_train, n_test, n_dropped, prompt_template, seconds, created_at) "
                "VALUES (?, 'm', 'h', 'first_letter', ?, 'holdout', 1, 1, 1, 0, 0, 't', '{}', now())", [run_id, config])


def absorption_row(con, sae_key: str, run_id: str) -> None:
    con.execute("INSERT INTO sae_absorption (sae_key, task, probe_run_id, hook_name, n_letters, split_mode, n_folds, "
                "n_unstable_letters, split_rule, config, seconds, created_at) "
                "VALUES (?, 'first_letter', ?, 'h', 0, 'holdout', 1, 0, 'guarded', 'c', '{}', now())", [sae_key, run_id])


def test_a_stored_probe_run_is_reused_unless_only_remeasured_saes_point_at_it(tmp_path):
    with db.atomic_database(tmp_path / "x.duckdb", start_from_existing=False) as con:
        probe_run_row(con, "orphan", "c1")  # written by a build killed before its first SAE committed
        assert db.stored_probe_run(con, "m", "h", "c1", [])[0] == "orphan"
        assert db.stored_probe_run(con, "m", "h", "other config", []) is None
        probe_run_row(con, "shared", "c2")
        absorption_row(con, "a", "shared")
        absorption_row(con, "b", "shared")
        assert db.stored_probe_run(con, "m", "h", "c2", ["a"])[0] == "shared"  # b keeps pointing at it
        assert db.stored_probe_run(con, "m", "h", "c2", ["a", "b"]) is None  # both remeasured: a new probe
        assert db.delete_unreferenced_probe_runs(con, "m", "h") == ["orphan"]
        assert db.delete_unreferenced_probe_runs(con, "m", "other hook") == []
