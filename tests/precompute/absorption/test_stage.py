"""The absorption stage end to end on the embedded model and SAE (a small word subset): rows land in
every table, a rerun skips finished SAEs, a second SAE at the same hook reuses the stored probe, and
the export writes SAEBench's field names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from precompute.absorption.ablation import AblationMetricConfig
from precompute.absorption.run import AbsorptionConfig
from precompute.dashboards import DashboardConfig
from precompute.export import export_sae
from precompute.job import JobConfig, run_job
from precompute.model_loading import load_model_cached
from precompute.sae_loading import SAESpec

SAE_DIR = Path(__file__).resolve().parents[3] / "assets" / "saes" / "smollm2-l6-topk-4k-k32"
CONFIG = AbsorptionConfig(max_words=1300, model_check_per_letter=2, ablation=AblationMetricConfig(max_candidates=2))


def job_config(folder: Path) -> JobConfig:
    return JobConfig(model_name="smollm2-135m-embedded", corpus_path=folder / "corpus.parquet", corpus_rows=(0, 8),
                     db_path=folder / "abs.duckdb", dashboard=DashboardConfig(batch_size=8), absorption=CONFIG)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`python -m precompute build` in miniature: dashboards on 8 random rows, then absorption."""
    model = load_model_cached()
    folder = tmp_path_factory.mktemp("absorption")
    rows = np.random.default_rng(0).integers(100, 40_000, size=(8, 64)).astype(np.int32)
    pq.write_table(pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))}), folder / "corpus.parquet")
    messages: list[str] = []
    run_job([SAESpec(key="first", path=SAE_DIR)], job_config(folder), model=model, log=messages.append)
    return model, folder / "abs.duckdb", messages


def count(con, sql: str, params=()) -> int:
    return con.execute(sql, list(params)).fetchall()[0][0]


def test_every_absorption_table_is_filled(built):
    _, path, _ = built
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    assert count(con, "SELECT count(*) FROM probe_words") == 1300
    assert count(con, "SELECT count(*) FROM letter_probes") == 26
    assert count(con, "SELECT count(*) FROM sae_letters WHERE sae_key = 'first'") == 26
    assert count(con, "SELECT count(*) FROM sae_letter_k WHERE sae_key = 'first'") >= 26
    assert count(con, "SELECT count(*) FROM latent_letter_cos WHERE sae_key = 'first'") == 4096 * 26
    projection_rows = count(con, "SELECT count(*) FROM absorption_words WHERE metric = 'projection'")
    true_positives = count(con, "SELECT sum(n_probe_true_positives) FROM sae_letters")
    assert projection_rows == true_positives > 0
    assert count(con, "SELECT count(*) FROM absorption_words WHERE metric = 'ablation'") <= 2 * 26
    # the prompt can be rebuilt from the stored prefix and the template
    text = con.execute("SELECT text FROM probe_prefixes LIMIT 1").fetchall()[0][0]
    assert text.startswith("\n") and text.count(" has the first letter:") == 10
    con.close()


def test_rerun_skips_and_second_sae_reuses_the_probe(built):
    model, path, _ = built
    import duckdb

    before = duckdb.connect(str(path), read_only=True)
    probe_before = before.execute("SELECT weight FROM letter_probes ORDER BY letter").fetchall()
    before.close()
    messages: list[str] = []
    run_job([SAESpec(key="first", path=SAE_DIR), SAESpec(key="second", path=SAE_DIR)], job_config(path.parent),
            model=model, log=messages.append)
    assert any("skip absorption for first" in m for m in messages)
    assert sum("mean absorption fraction" in m for m in messages) == 1  # only the new SAE was measured
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT weight FROM letter_probes ORDER BY letter").fetchall() == probe_before
    first, second = (con.execute("SELECT mean_absorption_fraction FROM sae_absorption WHERE sae_key = ?", [k]).fetchall()[0][0]
                     for k in ("first", "second"))
    assert first == pytest.approx(second, abs=1e-6)  # same SAE, same probe, same words
    con.close()


def test_export_uses_saebench_field_names(built, tmp_path):
    _, path, _ = built
    written = export_sae(path, "first", tmp_path)
    result = json.loads(written[0].read_text())
    assert result["eval_type_id"] == "absorption_first_letter"
    assert set(result["eval_result_metrics"]["mean"]) == {
        "mean_absorption_fraction_score", "mean_full_absorption_score", "mean_num_split_features",
        "std_dev_absorption_fraction_score", "std_dev_full_absorption_score", "std_dev_num_split_features"}
    detail = result["eval_result_details"][0]
    assert set(detail) == {"first_letter", "mean_absorption_fraction", "full_absorption_rate", "num_full_absorption",
                           "num_probe_true_positives", "num_split_features"}
    assert (tmp_path / "first" / "absorption_words.parquet").exists()
    assert (tmp_path / "first" / "sae_letter_k.csv").exists()
