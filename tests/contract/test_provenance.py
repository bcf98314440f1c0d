"""contract/provenance.py: every column it names is a column of the DDL, every function it names exists, and the
pages put the function's file in the help text of the numbers they show (page → provenance → code: 3 files)."""

from __future__ import annotations

import importlib

import duckdb
import pytest

from contract import provenance
from contract.schema import DDL_PATH


def ddl_columns() -> set[str]:
    con = duckdb.connect(":memory:")
    con.execute(DDL_PATH.read_text())
    rows = con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
    return {f"{table}.{column}" for table, column in rows}


def test_every_named_column_is_in_the_ddl():
    assert set(provenance.COMPUTED_BY) - ddl_columns() == set()


@pytest.mark.parametrize("source", sorted({s.function for s in provenance.COMPUTED_BY.values()}))
def test_every_named_function_exists(source):
    found = importlib.import_module(source.split(":")[0])
    for part in source.split(":")[1].split("."):
        found = getattr(found, part)
    assert callable(found)


def test_help_names_each_function_once_with_its_file():
    text = provenance.help_for("sae_letters.mean_absorption_fraction", "sae_letters.full_absorption_rate",
                               "latents.density")
    assert text.count("precompute/absorption/stats.py:fold_and_word_intervals") == 1
    assert "precompute/pipeline/dashboards.py:latent_stats" in text
    with pytest.raises(KeyError):
        provenance.help_for("latents.no_such_column")
