"""A work file belongs to the command that started it: what it records, when it is resumed, refused or replaced."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from precompute.storage import writer as db
from tests.precompute import bad_inputs as bad


def interrupted(target: Path, inputs: dict, resumable: bool = True) -> None:
    """A run killed after writing something (its work file stays, as a crash leaves it)."""
    with pytest.raises(KeyboardInterrupt):
        with db.atomic_database(target, start_from_existing=True, inputs=inputs, resumable=resumable) as con:
            db.sae_number(con, "half-done")
            raise KeyboardInterrupt
    assert db.work_path(target).exists()


def test_a_smaller_batch_size_resumes_the_same_runs_work(tmp_path: Path):
    target = bad.explorer_database(tmp_path / "x.duckdb")
    interrupted(target, {"saes": ["a"], "dashboard": {"batch_size": 32, "n_top": 20}})
    messages: list[str] = []
    with db.atomic_database(target, start_from_existing=True, inputs={"saes": ["a"], "dashboard": {"batch_size": 8,
                            "n_top": 20}}, log=messages.append):
        pass
    assert any("resuming" in m for m in messages)


def test_the_refusal_names_the_inputs_that_differ(tmp_path: Path):
    target = bad.explorer_database(tmp_path / "x.duckdb")
    interrupted(target, {"command": "build", "saes": ["a"], "dashboard": {"n_top": 20}})
    with pytest.raises(db.StaleWorkError, match=r"differs from this one in dashboard\.n_top, saes"):
        with db.atomic_database(target, start_from_existing=True,
                                inputs={"command": "build", "saes": ["b"], "dashboard": {"n_top": 10}}):
            pass
    assert db.work_path(target).exists()


def test_a_killed_merges_work_file_never_blocks_the_next_merge(tmp_path: Path):
    """A merge of several sources (or Ray shards, registered as they finish) killed in its second source: the rerun
    starts again from the first source and replaces the leftover work file instead of refusing it."""
    target = bad.explorer_database(tmp_path / "x.duckdb")
    interrupted(target, {"command": "merge"}, resumable=False)
    with db.atomic_database(target, start_from_existing=True, inputs={"command": "merge"}, resumable=False):
        pass
    assert not db.work_path(target).exists()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sae_numbers").fetchall() == [(0,)]  # the killed run's row is gone


def test_a_merge_refuses_a_builds_interrupted_work(tmp_path: Path):
    target = bad.explorer_database(tmp_path / "x.duckdb")
    interrupted(target, {"command": "build", "saes": ["a"]})
    with pytest.raises(db.StaleWorkError, match="interrupted build"):
        with db.atomic_database(target, start_from_existing=True, inputs={"command": "merge"}, resumable=False):
            pass


def test_an_input_refused_after_the_start_leaves_no_work_file(tmp_path: Path):
    """E.g. an SAE whose width is not the model's, known only once a hub model is loaded: the corrected rerun must
    not meet this run's work file."""
    target = bad.explorer_database(tmp_path / "x.duckdb")
    with pytest.raises(db.RefusedInput):
        with db.atomic_database(target, start_from_existing=True, inputs={"saes": ["a"]}):
            raise db.RefusedInput("SAE a reads 48-wide activations")
    assert not db.work_path(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.duckdb"]
