"""One writer per target, across processes: a build held at a known point (its lock taken and its work file open)
while a second command starts against the same target. The second is refused in one line naming the first one's
pid, deletes nothing, and the first finishes and publishes its SAE. Both orders of `--fresh` and a plain build, and
merge and migrate as the second writer. Then a work file left by a killed build of other SAEs: refused, kept, and
discarded only when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from precompute.storage.writer import work_path
from precompute.util.faults import CRASH_ENV, PAUSE_ENV
from tests.precompute import bad_inputs as bad

PAUSE_POINT = "work-file-open"


def cli(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "precompute", *argv]


def start_paused(argv: list[str], release: Path) -> subprocess.Popen:
    env = {**bad.environment(), PAUSE_ENV: f"{PAUSE_POINT}:{release}"}
    process = subprocess.Popen(cli(argv), cwd=bad.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    for line in process.stdout:
        if line.startswith(f"paused at {PAUSE_POINT}"):
            return process
    process.wait()
    raise AssertionError(f"the first build ended before its pause point (exit {process.returncode})")


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(argv), cwd=bad.REPO, env={**bad.environment(), **env}, capture_output=True, text=True,
                          timeout=600)


def sae_keys(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT sae_key FROM saes ORDER BY sae_key").fetchall()]


def second_writers(root: Path, first_fresh: bool) -> list[list[str]]:
    """The other kind of build, then merge and migrate, each against the target the first build holds."""
    other = bad.build(root, *([] if first_fresh else ["--fresh"]), sae=f"second={bad.TOY_SAE}")
    merge_source = bad.explorer_database(root / "source.duckdb")
    return [other, ["merge", "--db", str(bad.target(root)), "--from", str(merge_source)],
            ["migrate", "--db", str(bad.target(root))]]


@pytest.mark.parametrize("first_fresh", [True, False], ids=["fresh-first", "plain-first"])
def test_a_second_writer_is_refused_while_a_build_runs_and_deletes_nothing(tmp_path: Path, first_fresh: bool):
    root = tmp_path
    bad.explorer_database(bad.target(root))
    release = root / "go-on"
    first = start_paused(bad.build(root, *(["--fresh"] if first_fresh else []), sae=f"first={bad.TOY_SAE}"), release)
    try:
        work = work_path(bad.target(root))
        before = bad.sha256(bad.target(root))
        for argv in second_writers(root, first_fresh):
            done = run(argv)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, done.stderr
            assert "is being written by another process" in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
            assert work.exists(), f"{argv[0]} deleted the running build's work file"
            assert bad.sha256(bad.target(root)) == before
    finally:
        release.touch()
        rest = first.communicate(timeout=600)[0]
    assert first.returncode == 0, rest
    assert sae_keys(bad.target(root)) == ["first"]
    assert not work.exists() and not (root / "db" / ".explorer.duckdb.lock").exists()


def test_a_killed_builds_work_file_is_not_resumed_by_a_build_of_other_saes(tmp_path: Path):
    root = tmp_path
    bad.explorer_database(bad.target(root))
    killed = run(bad.build(root, sae=f"b={bad.TOY_SAE}"), **{CRASH_ENV: "before-matching"})
    assert killed.returncode == -9, killed.stderr
    work = work_path(bad.target(root))
    kept = bad.sha256(work)
    refused = run(bad.build(root, sae=f"d={bad.TOY_SAE}"))
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert "holds an interrupted build (model toy-hierarchy, SAEs b, corpus" in lines[0] and "--discard-work" in lines[0]
    assert bad.sha256(work) == kept and sae_keys(bad.target(root)) == []
    done = run(bad.build(root, "--discard-work", sae=f"d={bad.TOY_SAE}"))
    assert done.returncode == 0, done.stderr
    assert sae_keys(bad.target(root)) == ["d"]  # b's rows were never published
    with duckdb.connect(str(bad.target(root)), read_only=True) as con:
        assert con.execute("SELECT sae_key FROM sae_numbers").fetchall() == [("d",)]
    assert not work.exists()


def test_the_same_build_resumes_its_own_work_file(tmp_path: Path):
    root = tmp_path
    killed = run(bad.build(root, sae=f"b={bad.TOY_SAE}"), **{CRASH_ENV: "before-matching"})
    assert killed.returncode == -9
    done = run(bad.build(root, sae=f"b={bad.TOY_SAE}"))
    assert done.returncode == 0, done.stderr
    assert "resuming the interrupted build" in done.stdout
    assert sae_keys(bad.target(root)) == ["b"]
