"""`python -m precompute merge`: databases built apart (here: one per hook) merge into exactly the database
one build of everything gives, row for row."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from precompute.pipeline.merge import merge
from precompute.storage import writer as db
from precompute.storage.writer import SchemaMismatchError
from tests import helpers

COUNTED = ["saes", "latents", "contexts", "window_acts", "sequences", "vocab", "probe_runs", "letter_probes",
           "probe_folds", "probe_words", "sae_absorption", "sae_letters", "sae_letter_folds", "absorption_words",
           "latent_letter_cos", "latent_matches"]


def counts(path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in COUNTED}


def keep_only_hook(path, hook: str) -> None:
    """What a build of that hook alone would have written (its SAEs, its probe runs)."""
    with duckdb.connect(str(path)) as con:
        for (key,) in con.execute("SELECT sae_key FROM saes WHERE hook_name <> ?", [hook]).fetchall():
            db.delete_sae(con, key)
        for (run,) in con.execute("SELECT probe_run_id FROM probe_runs WHERE hook_name <> ?", [hook]).fetchall():
            db.delete_probe_run(con, run)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    return helpers.build_sweep_database(tmp_path_factory.mktemp("merge"))


def test_per_hook_databases_merge_into_the_whole(whole, tmp_path):
    late, early = tmp_path / "late.duckdb", tmp_path / "early.duckdb"
    shutil.copyfile(whole, late)
    shutil.copyfile(whole, early)
    keep_only_hook(late, helpers.HOOK)
    keep_only_hook(early, helpers.EARLY_HOOK)
    assert counts(late)["saes"] < counts(whole)["saes"]
    added = merge(late, early, log=lambda *_: None)
    assert added == sorted(s.key for s in helpers.SWEEP if s.hook == helpers.EARLY_HOOK)
    assert counts(late) == counts(whole)
    assert merge(late, early, log=lambda *_: None) == []  # merging again adds nothing
    assert counts(late) == counts(whole)


def test_merging_a_database_of_another_schema_is_refused(whole, tmp_path):
    other = tmp_path / "old.duckdb"
    shutil.copyfile(whole, other)
    with duckdb.connect(str(other)) as con:
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    target = tmp_path / "target.duckdb"
    shutil.copyfile(whole, target)
    with pytest.raises(SchemaMismatchError):
        merge(target, other, log=lambda *_: None)


def test_a_task_the_target_lacks_is_merged_for_the_saes_both_hold(whole, tmp_path):
    """A build that added a task to existing SAEs (the other database) merges into the target as that task's
    results only: the SAEs' other rows stay the target's, and the task's rows arrive renumbered and complete."""
    (tmp_path / "other").mkdir()
    other = helpers.build_sweep_database(tmp_path / "other", second_task=True)
    target = tmp_path / "target.duckdb"
    shutil.copyfile(whole, target)
    before = counts(target)
    with duckdb.connect(str(other), read_only=True) as con:
        task_rows = {t: con.execute(f"SELECT count(*) FROM {t} WHERE task = 'wordnet_category'").fetchall()[0][0]
                     for t in ("sae_absorption", "sae_letters", "absorption_words", "latent_letter_cos")}
        absorbed = con.execute("""SELECT n.sae_key, w.token_id, w.absorber FROM absorption_words w JOIN sae_numbers n
                                  USING (sae_num) WHERE w.task = 'wordnet_category' ORDER BY ALL""").fetchall()
    assert task_rows["sae_absorption"] > 0 and absorbed
    messages: list[str] = []
    assert merge(target, other, log=messages.append) == []  # no new SAE ...
    assert any("task result(s) the target lacks" in m for m in messages)  # ... but the task's results
    with duckdb.connect(str(target), read_only=True) as con:
        for table, n in task_rows.items():
            assert con.execute(f"SELECT count(*) FROM {table} WHERE task = 'wordnet_category'").fetchall()[0][0] == n
        assert con.execute("""SELECT n.sae_key, w.token_id, w.absorber FROM absorption_words w JOIN sae_numbers n
                              USING (sae_num) WHERE w.task = 'wordnet_category' ORDER BY ALL""").fetchall() == absorbed
        assert con.execute("SELECT count(*) FROM tasks WHERE task = 'wordnet_category'").fetchall()[0][0] == 1
        # the first-letter rows and the dashboards are the target's own, not doubled
        assert con.execute("SELECT count(*) FROM sae_absorption WHERE task = 'first_letter'").fetchall()[0][0] == \
            before["sae_absorption"]
        assert con.execute("SELECT count(*) FROM latents").fetchall()[0][0] == before["latents"]
    assert merge(target, other, log=lambda *_: None) == []  # merged again: nothing left to add
    assert counts(target)["sae_absorption"] == before["sae_absorption"] + task_rows["sae_absorption"]
