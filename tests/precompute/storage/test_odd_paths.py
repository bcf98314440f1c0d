"""No value is formatted into SQL: database paths with quotes, spaces and non-ASCII letters build, merge and export
(a path used to be pasted into `ATTACH '...'` by the compaction, so such a build failed after all its work)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from precompute.pipeline.merge import merge
from tests.precompute import bad_inputs as bad

ODD = "it's a \"quoted\" dïr; DROP TABLE x --"


def test_a_build_merge_and_export_work_at_a_path_with_quotes_spaces_and_unicode(tmp_path: Path):
    folder = tmp_path / ODD
    target = folder / "ëxplorer 'one'.duckdb"
    done = subprocess.run([sys.executable, "-m", "precompute", *bad.build(tmp_path, db=target)], cwd=bad.REPO,
                          env=bad.environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    merged = folder / "mérged 'two'.duckdb"
    assert merge(merged, target, log=lambda *_: None) == ["toy-hierarchy-relu-32"]
    with duckdb.connect(str(merged), read_only=True) as con:
        assert [row[0] for row in con.execute("SELECT sae_key FROM saes").fetchall()] == ["toy-hierarchy-relu-32"]
    exported = subprocess.run([sys.executable, "-m", "precompute", "export", "--sae", "toy-hierarchy-relu-32",
                               "--db", str(merged), "--out", str(folder / "out 'x'")], cwd=bad.REPO,
                              env=bad.environment(), capture_output=True, text=True, timeout=600)
    # it opened the database at that path and read the SAE's rows: a dashboards-only SAE has no absorption to export
    assert exported.returncode == 2 and exported.stderr.strip().splitlines() == [
        "error: no absorption results for SAE 'toy-hierarchy-relu-32' in this database"], exported.stderr
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no work, lock or temp file
