"""The absorption stage end to end on the embedded model and SAE (a small word subset): rows land in
every table, a rerun skips finished SAEs, a second SAE at the same hook reuses the stored probe, and
the export writes SAEBench's field names."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from precompute.absorption.ablation import AblationMetricConfig
from precompute.absorption.config import AbsorptionConfig
from precompute.loading.model import load_model_cached
from precompute.loading.sae import SAESpec
from precompute.pipeline.dashboards import DashboardConfig
from precompute.pipeline.job import JobConfig, run_job
from precompute.storage.export import export_sae
from tests import helpers

SAE_DIR = Path(__file__).resolve().parents[3] / "assets" / "saes" / "smollm2-l6-topk-4k-k32"
# two folds: cross-fitting exercised at half the cost of the default five
CONFIG = AbsorptionConfig(max_words=1300, model_check_per_letter=2, ablation=AblationMetricConfig(max_candidates=2),
                          n_folds=2)
WRITTEN: dict[str, set[tuple[str, ...]]] = {}  # the columns of every table the `built` build handed the writer


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
    with helpers.recording_writes() as written:
        run_job([SAESpec(key="first", path=SAE_DIR)], job_config(folder), model=model, log=messages.append)
    WRITTEN.update(written)
    # Tests that add SAEs start from this copy so they do not depend on which tests ran before them.
    shutil.copyfile(folder / "abs.duckdb", folder / "first-only.duckdb")
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
    assert count(con, "SELECT sum(len(decoder_cos)) FROM latent_letter_cos WHERE sae_num = "
                      "(SELECT sae_num FROM sae_numbers WHERE sae_key = 'first')") == 4096 * 26  # 26 cosines each
    projection_rows = count(con, "SELECT count(*) FROM absorption_words WHERE metric = 'projection'")
    absorbed = count(con, "SELECT count(*) FROM absorption_words WHERE metric = 'projection' "
                          "AND (is_full_absorption OR absorption_fraction > 0)")
    true_positives = count(con, "SELECT sum(n_probe_true_positives) FROM sae_letters")
    assert projection_rows == absorbed  # a word that was not absorbed has no projection row
    assert 0 < projection_rows < true_positives
    assert count(con, "SELECT count(*) FROM absorption_words WHERE metric = 'ablation'") <= 2 * 26
    # the prompt can be rebuilt from the stored prefix and the template
    text = con.execute("SELECT text FROM probe_prefixes LIMIT 1").fetchall()[0][0]
    assert text.startswith("\n") and text.count(" has the first letter:") == 10
    con.close()


def test_the_absorption_build_writes_what_the_ddl_declares(built):
    """Every absorption table (and the token and score tables that need absorption results) as the DDL declares
    it (tests/precompute/storage/test_ddl.py checks the tables a dashboards build writes)."""
    assert set(WRITTEN) >= helpers.ABSORPTION_BUILD_TABLES, sorted(helpers.ABSORPTION_BUILD_TABLES - set(WRITTEN))
    assert not helpers.ddl_mismatches(WRITTEN), "\n".join(helpers.ddl_mismatches(WRITTEN))


def test_a_true_positive_without_a_row_reads_as_not_absorbed(built):
    _, path, _ = built
    from backend.database import ExplorerDB

    db = ExplorerDB(path)
    token_id, model = db._rows("""
        SELECT pw.token_id, r.model_name FROM probe_words pw JOIN sae_absorption a ON a.probe_run_id = pw.probe_run_id
        JOIN probe_runs r ON r.probe_run_id = pw.probe_run_id
        WHERE a.sae_key = 'first' AND pw.probe_logit > 0 AND pw.token_id NOT IN
              (SELECT token_id FROM absorption_words WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'first') AND metric = 'projection')
        LIMIT 1""")[0]
    frame = db.token_absorption(model, token_id)
    row = frame[(frame["sae_key"] == "first") & (frame["metric"] == "projection")]
    assert len(row) == 1
    assert row["absorption_fraction"].iloc[0] == 0 and not row["is_full_absorption"].iloc[0]
    assert row["split_acts"].isna().iloc[0] and row["fold"].iloc[0] >= 0
    stored = db._rows("SELECT token_id FROM absorption_words WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = 'first') AND metric = 'projection' LIMIT 1")[0][0]
    absorbed = db.token_absorption(model, stored)
    assert (absorbed[(absorbed["sae_key"] == "first")]["metric"] == "projection").sum() == 1  # no duplicate


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


def test_the_saebench_json_export_fits_saebench_s_own_schema(built, tmp_path):
    from precompute.storage.export import PEER_PYTHON, validate_with_saebench

    _, path, _ = built
    written = export_sae(path, "first", tmp_path, saebench_only=True)
    assert [p.name for p in written] == ["first_eval_results.json"] and not (tmp_path / "first").exists()
    result = json.loads(written[0].read_text())
    assert result["sae_bench_commit_hash"].startswith("absorption-explorer ")  # SAEBench's schema wants a string
    assert result["absorption_explorer"]["split_rule"] in {"guarded", "l1", "f1"}
    # SAEBench's details list the letters its means cover; the others (probe F1 at or below the cut-off) are ours
    con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})  # as the export opens it
    included = {r[0]: r[1] for r in con.execute(
        "SELECT letter, included FROM sae_letters WHERE sae_key = 'first' AND task = 'first_letter'").fetchall()}
    con.close()
    assert [d["first_letter"] for d in result["eval_result_details"]] == sorted(k for k, v in included.items() if v)
    assert {d["first_letter"] for d in result["absorption_explorer"]["excluded_letters"]} == {
        k for k, v in included.items() if not v}
    if not PEER_PYTHON.exists():
        pytest.skip("no SAEBench peer venv (bash bench/peers/setup.sh saebench)")
    assert validate_with_saebench(written[0]) is None


def probe_run_of(con, key: str) -> str:
    return con.execute("SELECT probe_run_id FROM sae_absorption WHERE sae_key = ?", [key]).fetchall()[0][0]


def test_a_build_with_another_config_adds_a_probe_run_and_keeps_the_old_one(built, tmp_path):
    """Results name the probe run they were measured against, and a build with another config at the same
    hook never leaves them pointing at a probe that is gone (it used to replace the hook's probe and words)."""
    import duckdb

    model, path, _ = built
    shutil.copyfile(path.parent / "first-only.duckdb", tmp_path / "abs.duckdb")
    other = dataclasses.replace(CONFIG, max_words=900, run_ablation_metric=False)
    config = dataclasses.replace(job_config(tmp_path), absorption=other)
    shutil.copyfile(path.parent / "corpus.parquet", tmp_path / "corpus.parquet")
    messages: list[str] = []
    run_job([SAESpec(key="first", path=SAE_DIR), SAESpec(key="third", path=SAE_DIR)], config, model=model,
            log=messages.append)
    assert any("skip absorption for first: already measured with another absorption config" in m for m in messages)
    con = duckdb.connect(str(tmp_path / "abs.duckdb"), read_only=True)
    first, third = probe_run_of(con, "first"), probe_run_of(con, "third")
    assert first != third
    runs = dict(con.execute("SELECT probe_run_id, config FROM probe_runs").fetchall())
    assert set(runs) == {first, third}
    assert json.loads(runs[first])["max_words"] == 1300 and json.loads(runs[third])["max_words"] == 900
    words = dict(con.execute("SELECT probe_run_id, count(*) FROM probe_words GROUP BY ALL").fetchall())
    assert words == {first: 1300, third: 900}
    assert count(con, "SELECT count(*) FROM letter_probes WHERE probe_run_id = ?", [first]) == 26
    for table in ("sae_letters", "sae_letter_k", "latent_letter_cos", "absorption_words"):  # every per-SAE row names it
        keyed = f"{table} JOIN sae_numbers USING (sae_num)" if table in ("latent_letter_cos", "absorption_words") else table
        assert dict(con.execute(f"SELECT sae_key, probe_run_id FROM {keyed} GROUP BY ALL").fetchall()) == \
            {"first": first, "third": third}
    con.close()

    # Remeasuring the old run's only SAE with the new config drops the old run and keeps one run at the hook.
    run_job([SAESpec(key="first", path=SAE_DIR)], dataclasses.replace(config, force=True), model=model,
            log=lambda *_: None)
    con = duckdb.connect(str(tmp_path / "abs.duckdb"), read_only=True)
    assert probe_run_of(con, "first") == third  # the stored probe of this config is reused
    assert [r[0] for r in con.execute("SELECT probe_run_id FROM probe_runs").fetchall()] == [third]
    assert count(con, "SELECT count(*) FROM probe_words WHERE probe_run_id = ?", [first]) == 0
    con.close()


def test_a_second_task_is_measured_beside_the_first_and_exported_on_its_own(built, tmp_path):
    """wordnet_pos on the SAE that already has first-letter results: those are kept (skipped, not remeasured), the
    new task's rows carry its four classes, its prompts ask for them, and export writes its own SAEBench file."""
    model, path, _ = built
    import duckdb

    work = tmp_path / "abs.duckdb"
    shutil.copyfile(path.parent / "first-only.duckdb", work)
    config = dataclasses.replace(job_config(path.parent), db_path=work, tasks=("first_letter", "wordnet_pos"))
    messages: list[str] = []
    run_job([SAESpec(key="first", path=SAE_DIR)], config, model=model, log=messages.append)
    assert any("skip absorption for first: already in the database" in m for m in messages)
    con = duckdb.connect(str(work), read_only=True)
    assert con.execute("SELECT task, n_letters > 0 FROM sae_absorption ORDER BY task").fetchall() == [
        ("first_letter", True), ("wordnet_pos", True)]
    assert con.execute("SELECT classes FROM tasks WHERE task = 'wordnet_pos'").fetchall() == [
        (["noun", "verb", "adjective", "adverb"],)]
    assert {r[0] for r in con.execute("SELECT letter FROM sae_letters WHERE task = 'wordnet_pos'").fetchall()} == {
        "noun", "verb", "adjective", "adverb"}
    assert {r[0] for r in con.execute("SELECT count(DISTINCT class_index) FROM latent_letter_cos GROUP BY task").fetchall()} == {26, 4}
    assert count(con, "SELECT sum(len(decoder_cos)) FROM latent_letter_cos WHERE task = 'wordnet_pos'") == 4096 * 4
    text = con.execute("SELECT p.text FROM probe_prefixes p JOIN probe_runs r USING (probe_run_id) "
                       "WHERE r.task = 'wordnet_pos' LIMIT 1").fetchall()[0][0]
    assert text.count(" is a part of speech:") == 10 and any(f": {c}\n" in text for c in ("noun", "verb", "adjective"))
    # the first-letter rows are the ones the first build wrote
    assert count(con, "SELECT count(*) FROM sae_letters WHERE task = 'first_letter'") == 26
    con.close()
    written = export_sae(work, "first", tmp_path / "export")
    report = json.loads((tmp_path / "export" / "first_wordnet_pos_eval_results.json").read_text())
    assert report["eval_type_id"] == "absorption_wordnet_pos" and report["absorption_explorer"]["task"] == "wordnet_pos"
    listed = report["eval_result_details"] + report["absorption_explorer"]["excluded_letters"]
    assert {d["first_letter"] for d in listed} == {"noun", "verb", "adjective", "adverb"}
    assert tmp_path / "export" / "first_eval_results.json" in written


def test_a_second_hook_reads_the_model_s_answers_from_the_first_hook_s_check(built, tmp_path, monkeypatch):
    """The model check reads the model's output, not the hook: in one build over two hooks the model answers once
    and the second hook's probe run stores the same answers and accuracies."""
    import precompute.absorption.hook as hook_module

    model, path, _ = built
    shutil.copyfile(path.parent / "corpus.parquet", tmp_path / "corpus.parquet")
    calls = []
    original = hook_module.answer_logits
    monkeypatch.setattr(hook_module, "answer_logits", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    specs = [SAESpec(key="layer6", path=SAE_DIR), SAESpec(key="layer2", path=SAE_DIR.parent / "smollm2-l2-topk-1k-k32")]
    run_job(specs, job_config(tmp_path), model=model, log=lambda *_: None)
    con = duckdb.connect(str(tmp_path / "abs.duckdb"), read_only=True)
    by_hook = {hook: dict(rows) for hook, rows in con.execute(
        """SELECT r.hook_name, list((w.token_id, w.model_correct)) FROM probe_words w JOIN probe_runs r USING (probe_run_id)
           WHERE w.model_correct IS NOT NULL GROUP BY r.hook_name""").fetchall()}
    accuracy = dict(con.execute("""SELECT r.hook_name, list(p.model_accuracy ORDER BY p.letter) FROM letter_probes p
                                   JOIN probe_runs r USING (probe_run_id) GROUP BY r.hook_name""").fetchall())
    con.close()
    assert len(calls) == 1, "the model answered for one hook only"
    assert set(by_hook) == {"blocks.2.hook_resid_post", "blocks.6.hook_resid_post"}
    assert by_hook["blocks.2.hook_resid_post"] == by_hook["blocks.6.hook_resid_post"] and by_hook["blocks.6.hook_resid_post"]
    assert accuracy["blocks.2.hook_resid_post"] == accuracy["blocks.6.hook_resid_post"]
