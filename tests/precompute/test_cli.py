"""The precompute CLI: documented options and clear errors on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from precompute.cli import build_parser, main, parse_rows


def test_every_build_option_is_documented():
    build = build_parser()._subparsers._group_actions[0].choices["build"]
    for action in build._actions:
        if action.dest != "help":
            assert action.help, f"--{action.dest} has no help text"


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "precompute", "--help"], capture_output=True, text=True, check=True)
    for command in ("corpus", "train", "build", "card"):
        assert command in out.stdout


def test_bad_sae_spec_is_an_error_message(capsys, tmp_path):
    code = main(["build", "--sae", "no-such-folder-or-release", "--corpus", str(tmp_path)])
    assert code == 2
    assert "neither an existing SAE folder" in capsys.readouterr().err


def test_missing_corpus_is_an_error_message(capsys, tmp_path):
    code = main(["build", "--sae", "rel:id", "--corpus", str(tmp_path / "missing.parquet")])
    assert code == 2
    assert "run `python -m precompute corpus` first" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["5", "a:b", "10:5", "-1:3"])
def test_bad_rows_exit_with_a_message(text):
    with pytest.raises(SystemExit, match="--rows"):
        parse_rows(text)
