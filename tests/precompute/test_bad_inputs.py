"""Every bad input to a writer command (tests/precompute/bad_inputs.py, the issue's list) is refused before any work:
exit status 2, one line on stderr and no traceback, every file of the folder (the target included, by sha256)
exactly as it was, and no work or lock file left. Then the same for generated argument strings and file contents."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precompute.cli import main
from tests.precompute import bad_inputs as bad


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def assert_refused(code: int, lines: list[str], expect: str | None = None) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    if expect is not None:
        assert expect in lines[0], lines[0]


@pytest.mark.parametrize("case", bad.CASES, ids=[case.name for case in bad.CASES])
def test_a_bad_input_is_refused_in_one_line_and_changes_nothing(case: bad.BadInput, tmp_path: Path, capsys):
    folder = bad.case_folder(tmp_path, case)
    with bad.mounted(bad.mount_point(folder, case), case.mount) as available:
        if not available:
            pytest.skip(f"no {case.mount} filesystem can be mounted here (needs root)")
        argv = case.make(folder)
        before = bad.snapshot(folder)
        code, lines = run_cli(argv, capsys)
        assert_refused(code, lines, case.expect)
        assert bad.snapshot(folder) == before  # the target's sha256 included; no work, lock or temporary file


# --- generated cases ---------------------------------------------------------------------------------------------
def as_int(text: str) -> int | None:
    """The number Python's int() reads in `text` (what argparse and --rows accept: '+5', ' 5', '1_0'), else None."""
    try:
        return int(text)
    except ValueError:
        return None


NOT_AN_INTEGER = st.text(max_size=12).filter(lambda text: as_int(text) is None)
TOO_SMALL = {"--folds": 2, "--batch-size": 1, "--absorption-words": 1, "--n-top": 1, "--quantile-bins": 1,
             "--ablation-candidates": 1, "--per-bin": 0}
GENERATED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@GENERATED
@given(option=st.sampled_from(sorted(TOO_SMALL)), value=st.one_of(NOT_AN_INTEGER, st.integers(-10**6, 1)))
def test_a_generated_bad_number_is_refused(option: str, value, tmp_path_factory, capsys):
    if isinstance(value, int):
        value = value - 2 + TOO_SMALL[option] if value >= TOO_SMALL[option] else value  # always below the minimum
    root = tmp_path_factory.mktemp("number")
    code, lines = run_cli(bad.build(root, option, str(value)), capsys)
    assert_refused(code, lines)
    assert not any(root.iterdir())


@GENERATED
@given(text=st.text(min_size=1, max_size=40).filter(lambda text: not text.startswith("-")))
def test_a_generated_sae_spec_that_names_nothing_is_refused(text: str, tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("spec")
    code, lines = run_cli(bad.build(root, sae=str(root / "no-such" / text) if "/" in text else text), capsys)
    assert_refused(code, lines)
    assert not any(root.iterdir())


@GENERATED
@given(text=st.text(max_size=20).filter(lambda text: not text.startswith("-")))
def test_generated_rows_that_are_not_a_range_are_refused(text: str, tmp_path_factory, capsys):
    start, sep, stop = text.partition(":")
    low, high = as_int(start), as_int(stop)
    if sep and ":" not in stop and low is not None and high is not None and 0 <= low < high:
        text = f"{high}:{low}"  # a real range, turned round
    root = tmp_path_factory.mktemp("rows")
    code, lines = run_cli(bad.build(root, "--rows", text), capsys)
    assert_refused(code, lines)


FILES = {
    "cfg.json": lambda root, data: bad.build(root, sae=bad.sae_copy(root, lambda f: bad.write_bytes(f / "cfg.json", data))),
    "sae_weights.safetensors": lambda root, data: bad.build(
        root, sae=bad.sae_copy(root, lambda f: bad.write_bytes(f / "sae_weights.safetensors", data))),
    "corpus": lambda root, data: bad.build(root, corpus=bad.write_bytes(root / "corpus.parquet", data)),
    "database": lambda root, data: bad.then(bad.replaced_target(root, data), bad.build(root)),
    "merge source": lambda root, data: ["merge", "--db", str(bad.target(root)),
                                        "--from", str(bad.write_bytes(root / "other.duckdb", data))],
}


@GENERATED
@given(which=st.sampled_from(sorted(FILES)), data=st.binary(max_size=4096))
def test_generated_file_contents_are_refused_and_change_nothing(which: str, data: bytes, tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("file")
    bad.explorer_database(bad.target(root))
    argv = FILES[which](root, data)
    before = bad.snapshot(root)
    code, lines = run_cli(argv, capsys)
    assert_refused(code, lines)
    assert bad.snapshot(root) == before


def test_fresh_replaces_a_damaged_explorer_database(tmp_path: Path):
    """What a plain build refuses ("damaged or truncated: ... replace it with `build --fresh`"), --fresh replaces."""
    import subprocess
    import sys

    bad.explorer_database(bad.target(tmp_path))
    bad.truncate(bad.target(tmp_path), 0.3)
    run = [sys.executable, "-m", "precompute", *bad.build(tmp_path)]
    refused = subprocess.run(run, cwd=bad.REPO, env=bad.environment(), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "replace it with `build --fresh`" in refused.stderr
    done = subprocess.run([*run, "--fresh"], cwd=bad.REPO, env=bad.environment(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    import duckdb

    with duckdb.connect(str(bad.target(tmp_path)), read_only=True) as con:
        assert con.execute("SELECT sae_key FROM saes").fetchall() == [("toy-hierarchy-relu-32",)]
