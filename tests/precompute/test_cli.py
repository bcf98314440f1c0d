"""The precompute CLI: documented options and clear errors on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from precompute.cli import build_parser, main, parse_rows
from precompute.loading.preflight import PreflightError


def test_every_build_option_is_documented():
    build = build_parser()._subparsers._group_actions[0].choices["build"]
    for action in build._actions:
        if action.dest != "help":
            assert action.help, f"--{action.dest} has no help text"


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "precompute", "--help"], capture_output=True, text=True, check=True)
    for command in ("corpus", "train", "sweep", "build", "card", "export"):
        assert command in out.stdout


def test_bad_sae_spec_is_an_error_message(capsys, tmp_path):
    code = main(["build", "--sae", "no-such-folder-or-release", "--corpus", str(tmp_path)])
    assert code == 2
    assert "neither an existing SAE folder" in capsys.readouterr().err


TOY = ["--model", "toy-hierarchy", "--sae", "assets/saes/toy-hierarchy-relu-32"]


def test_missing_corpus_is_an_error_message(capsys, tmp_path):
    code = main(["build", *TOY, "--corpus", str(tmp_path / "missing.parquet"), "--db", str(tmp_path / "x.duckdb")])
    assert code == 2
    assert "run `python -m precompute corpus` first" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["5", "a:b", "10:5", "-1:3"])
def test_bad_rows_exit_with_a_message(text):
    with pytest.raises(PreflightError, match="--rows"):
        parse_rows(text)


def test_build_without_saes_is_an_error_message(capsys, tmp_path):
    assert main(["build", "--corpus", str(tmp_path)]) == 2
    assert "no SAEs to build" in capsys.readouterr().err


def test_build_from_a_sweep_takes_its_finished_saes_at_the_chosen_hooks(capsys, tmp_path):
    from precompute.cli import sweep_specs

    sweep = "recipes/sweeps/smollm2-embedded.json"
    for name in ("smollm2-l6-topk-1k-k16", "smollm2-l2-topk-1k-k32"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text("{}")
    specs = sweep_specs(sweep, tmp_path, None)
    assert sorted(s.key for s in specs) == ["smollm2-l2-topk-1k-k32", "smollm2-l6-topk-1k-k16"]
    assert "smollm2-l6-topk-4k-k64" in capsys.readouterr().err  # unfinished ones are named, not built
    only_l6 = sweep_specs(sweep, tmp_path, {"blocks.6.hook_resid_post"})
    assert [s.key for s in only_l6] == ["smollm2-l6-topk-1k-k16"] and only_l6[0].path == tmp_path / "smollm2-l6-topk-1k-k16"


def test_sweep_with_an_unknown_recipe_name_is_an_error_message(capsys):
    assert main(["sweep", "recipes/sweeps/smollm2-embedded.json", "--only", "nope"]) == 2
    assert "not in sweep" in capsys.readouterr().err


def test_a_missing_sweep_file_is_an_error_message_not_a_traceback(tmp_path, capsys):
    from precompute.cli import main

    assert main(["build", "--sweep", str(tmp_path / "nope.json"), "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_rows_past_the_end_of_a_small_corpus_are_an_error_message(capsys, tmp_path):
    """The default --rows 100000:102048 suits the shipped corpus; on a 10-row corpus the build used to fail
    with ZeroDivisionError in the model pass (after the whole absorption stage)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = tmp_path / "small.parquet"
    pq.write_table(pa.table({"input_ids": pa.array([[1, 2, 3]] * 10, type=pa.list_(pa.int32()))}), corpus)
    assert main(["build", *TOY, "--corpus", str(corpus), "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "--rows 100000:102048 starts past the end of" in capsys.readouterr().err
    assert not (tmp_path / "x.duckdb").exists()
    assert main(["card", str(tmp_path), "--corpus", str(corpus), "--rows", "10:20"]) == 2
    assert "(10 rows); pass --rows START:STOP with START < 10" in capsys.readouterr().err


def test_default_sae_records_the_sae_the_pages_open(tmp_path, capsys):
    import duckdb

    from tests import helpers

    db = helpers.build_tiny_database(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["default-sae", "--db", str(db), "--sae", "second"]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'default_sae'").fetchall() == [("second",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no work, lock or temporary file left
