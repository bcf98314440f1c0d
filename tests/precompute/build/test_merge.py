"""`python -m precompute merge`: databases built apart (here: one per hook) merge into exactly the database
one build of everything gives, row for row."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from precompute.storage import writer as db
from precompute.storage.writer import SchemaMismatchError
from precompute.build.merge import merge
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
