"""Crash safety of a real build: a subprocess build is SIGKILLed at each named point of a build (model
pass, after an SAE's commit, absorption, matching, compaction, rename), then rerun. Each rerun must keep
every SAE committed before the kill and recompute nothing else, the target must stay untouched until the
rename, and no temporary file may survive the run that finally succeeds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from precompute.toy import TOY_MODEL_NAME
from precompute.util.faults import CRASH_ENV
from tests.helpers import EARLY_HOOK, HOOK, planted_sae_folder, random_corpus

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("crash_build.py")
TOY_SAE = "toy-hierarchy-relu-32"
DASHBOARDS_DONE = re.compile(r"^(\S+): \d+ tokens, pass ")
ABSORPTION_DONE = re.compile(r"^(\S+): mean absorption fraction ")


def run_build(command: list[str], crash_at: str | None) -> tuple[int, list[str]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1500)
    if crash_at is None and done.returncode != 0:
        raise AssertionError(done.stdout + done.stderr)
    return done.returncode, done.stdout.splitlines()


def computed(lines: list[str], pattern: re.Pattern) -> set[str]:
    return {m.group(1) for m in map(pattern.match, lines) if m}


def leftovers(folder: Path, target: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != target)


def committed_saes(target: Path) -> dict[str, object]:
    with duckdb.connect(str(target), read_only=True) as con:
        return dict(con.execute("SELECT sae_key, created_at FROM saes").fetchall())


@pytest.fixture
def tiny_build(tmp_path: Path) -> Path:
    random_corpus(tmp_path / "corpus.parquet", 32)
    for name, hook, seed in (("a", HOOK, 1), ("b", HOOK, 2), ("c", EARLY_HOOK, 3)):
        planted_sae_folder(tmp_path / "saes", seed=seed, name=name, hook=hook, aligned_decoder=True)
    (tmp_path / "db").mkdir()
    return tmp_path


# (crash point, SAEs whose dashboards that run computes before it dies). Each run resumes the one before.
CRASH_SEQUENCE = [
    (f"model-pass:{HOOK}", set()),          # in the shared model pass of a and b: nothing committed
    ("after-dashboards:a", {"a"}),          # a committed, then killed
    ("after-dashboards:b", {"b"}),          # resumes: a kept, only b computed
    ("before-matching", {"c"}),             # the other hook
    ("compaction", set()),                  # matching done; killed inside the compaction copy
    ("before-rename", set()),               # compaction finished, rename not yet
    ("after-rename", set()),                # the target is new; the work file is left behind
]


def test_a_build_killed_at_every_step_resumes_without_recomputing(tiny_build: Path):
    target = tiny_build / "db" / "explorer.duckdb"
    command = [sys.executable, str(DRIVER), str(tiny_build)]
    for point, expected in CRASH_SEQUENCE:
        code, lines = run_build(command, point)
        assert code == -signal.SIGKILL, f"{point}: the build did not reach its crash point\n" + "\n".join(lines)
        assert computed(lines, DASHBOARDS_DONE) == expected, (point, lines)
        assert target.exists() == (point == "after-rename"), point  # the target changes only at the rename
    assert set(committed_saes(target)) == {"a", "b", "c"}
    before = committed_saes(target)
    code, lines = run_build(command, None)
    assert computed(lines, DASHBOARDS_DONE) == set()
    assert committed_saes(target) == before  # kept, not rewritten
    assert leftovers(target.parent, target) == []  # no work file, WAL or compaction copy survives


def test_a_stale_compaction_copy_of_a_killed_build_is_removed(tiny_build: Path):
    target = tiny_build / "db" / "explorer.duckdb"
    command = [sys.executable, str(DRIVER), str(tiny_build)]
    code, _ = run_build(command, "compaction")
    assert code == -signal.SIGKILL
    assert any(".compact-" in name for name in leftovers(target.parent, target))
    code, lines = run_build(command, None)
    assert computed(lines, DASHBOARDS_DONE) == set()  # resumed from the work file
    assert leftovers(target.parent, target) == []


def test_a_build_killed_after_one_sae_absorption_keeps_it(tmp_path: Path):
    """The real CLI, on the toy model (precompute/toy: it loads in a blink, so three builds stay cheap): two SAEs at
    one hook, first letters of the toy's words. The absorption stage runs before the dashboards (their token_letters
    read its letter latents). Killed after the first SAE's absorption results are committed, then after the first
    SAE's dashboards: each rerun computes only what was not committed, against one probe run."""
    target = tmp_path / "db" / "explorer.duckdb"
    sae = REPO / "assets" / "saes" / TOY_SAE
    command = [sys.executable, "-m", "precompute", "build", "--model", TOY_MODEL_NAME,
               "--corpus", str(REPO / "assets" / "toy" / "corpus.parquet"), "--rows", "0:64",
               "--sae", f"a={sae}", "--sae", f"b={sae}", "--folds", "2", "--no-ablation-metric",
               "--batch-size", "8", "--device", "cpu", "--db", str(target)]
    code, lines = run_build(command, "after-absorption:a")
    assert code == -signal.SIGKILL, "\n".join(lines)
    assert computed(lines, ABSORPTION_DONE) == {"a"} and computed(lines, DASHBOARDS_DONE) == set()
    assert not target.exists()
    code, lines = run_build(command, "after-dashboards:a")
    assert code == -signal.SIGKILL, "\n".join(lines)
    assert computed(lines, ABSORPTION_DONE) == {"b"} and computed(lines, DASHBOARDS_DONE) == {"a"}
    code, lines = run_build(command, None)
    assert computed(lines, DASHBOARDS_DONE) == {"b"} and computed(lines, ABSORPTION_DONE) == set()
    with duckdb.connect(str(target), read_only=True) as con:
        runs = con.execute("SELECT DISTINCT probe_run_id FROM sae_absorption").fetchall()
        assert len(runs) == 1 and con.execute("SELECT count(*) FROM probe_runs").fetchall() == [(1,)]
        letters = dict(con.execute("SELECT sae_key, count(*) FROM token_letters JOIN sae_numbers USING (sae_num) GROUP BY ALL").fetchall())
        assert set(letters) == {"a", "b"} and letters["a"] == letters["b"] > 0  # the same SAE twice
    assert leftovers(target.parent, target) == []
