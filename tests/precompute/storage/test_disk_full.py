"""A full disk at each place a write can hit it (copying the target, the work file's checkpoint, the compaction copy
and its final checkpoint on DETACH): one message that says how much space is needed, the target unchanged, and
the partial work file removed (it could not be trusted, and must not grow) or, once complete, kept for a resume.
On a real 1.5 MB filesystem where root can mount one, and by fault injection everywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from precompute.storage import writer as db
from precompute.util.faults import DISK_FULL_ENV
from tests.precompute import bad_inputs as bad


def target_with_rows(path: Path, n_tokens: int = 2000) -> Path:
    """An explorer database whose vocabulary makes it large enough to measure against a small disk."""
    bad.explorer_database(path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO vocab SELECT 'm', i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) FROM range(?) t(i)",
                    [n_tokens])
    return path


def add_sae(con, key: str) -> None:
    db.sae_number(con, key)


def leftovers(folder: Path, target: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != target)


@pytest.mark.parametrize("point, work_kept", [("copy", False), ("checkpoint", False), ("compaction", True),
                                              ("detach", True)])
def test_a_full_disk_is_one_message_and_the_target_is_unchanged(tmp_path: Path, monkeypatch, point: str,
                                                                  work_kept: bool):
    target = target_with_rows(tmp_path / "x.duckdb")
    before = bad.sha256(target)
    monkeypatch.setenv(DISK_FULL_ENV, point)
    with pytest.raises(db.DiskFullError) as raised:
        with db.atomic_database(target, start_from_existing=True, inputs={"saes": ["a"]}) as con:
            add_sae(con, "a")
    message = str(raised.value)
    assert "\n" not in message and "it needs about" in message and "MB free" in message
    assert bad.sha256(target) == before
    work = db.work_path(target)
    assert work.exists() == work_kept
    assert [name for name in leftovers(tmp_path, target) if "compact" in name] == []
    if work_kept:  # complete: a rerun with the space back resumes it and publishes
        monkeypatch.delenv(DISK_FULL_ENV)
        messages: list[str] = []
        with db.atomic_database(target, start_from_existing=True, inputs={"saes": ["a"]}, log=messages.append):
            pass
        assert any("resuming" in m for m in messages)
        with duckdb.connect(str(target), read_only=True) as con:
            assert con.execute("SELECT sae_key FROM sae_numbers").fetchall() == [("a",)]
    assert not (tmp_path / ".x.duckdb.lock").exists()


@pytest.fixture
def small_disk(tmp_path: Path):
    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("no small filesystem can be mounted here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_real_full_disk_during_the_copy_removes_the_partial_work_file(small_disk: Path):
    target = target_with_rows(small_disk / "x.duckdb")
    size = target.stat().st_size
    assert 1536 * 1024 < 2 * size + 64 * 1024, "the target must not fit twice on the small disk"
    before = bad.sha256(target)
    with pytest.raises(db.DiskFullError, match="partial work file was removed"):
        with db.atomic_database(target, start_from_existing=True, inputs={"saes": ["a"]}) as con:
            add_sae(con, "a")
    assert bad.sha256(target) == before
    assert leftovers(small_disk, target) == []  # the space the failed copy took is free again
