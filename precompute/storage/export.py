"""Export one SAE's absorption results: SAEBench-style JSON per task (same field names as SAEBench's
absorption eval output; first_letter's is the file SAEBench writes) plus every absorption table (every task,
with its `task` column) as Parquet and CSV, for round trips and for comparing our numbers with SAEBench's."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import duckdb
import pandas as pd

from contract.fragments import SPLIT_ACT_LISTS, WORD_SPLIT_ACTS
from contract.rows import SaeRow
from contract.schema import COS_SCALE

EVAL_TYPE_ID = "absorption_first_letter"  # SAEBench's EVAL_TYPE_ID_ABSORPTION; other tasks: absorption_<task>

SAE_ROW = "SELECT * FROM saes WHERE sae_key = ?"
SAE_TASKS = "SELECT task FROM sae_absorption WHERE sae_key = ? ORDER BY task = 'first_letter' DESC, task"
SAE_SUMMARY = "SELECT * FROM sae_absorption WHERE sae_key = ? AND task = ?"
SAE_LETTERS = "SELECT * FROM sae_letters WHERE sae_key = ? AND task = ? ORDER BY letter"
# Per-SAE tables exported as files, every task's rows: name -> query (one bound parameter, the SAE key).
SAE_TABLE_EXPORTS = {
    "sae_letters": "SELECT * FROM sae_letters WHERE sae_key = ? ORDER BY task, letter",
    "sae_letter_folds": "SELECT * FROM sae_letter_folds WHERE sae_key = ? ORDER BY task, letter, fold",
    "sae_letter_k": "SELECT * FROM sae_letter_k WHERE sae_key = ? ORDER BY task, letter, fold, k",
    # exported a row per latent and class with plain cosines, as users read it (stored as SMALLINT lists per block)
    "latent_letter_cos": f"""
        SELECT n.sae_key, c.task, c.probe_run_id, c.latent, t.classes[c.class_index] AS letter, c.decoder_cos, c.encoder_cos
        FROM (SELECT sae_num, task, probe_run_id, class_index, first_latent + generate_subscripts(decoder_cos, 1) - 1 AS latent,
                     unnest(decoder_cos) / {COS_SCALE} AS decoder_cos, unnest(encoder_cos) / {COS_SCALE} AS encoder_cos
              FROM latent_letter_cos) c
        JOIN sae_numbers n USING (sae_num) JOIN tasks t USING (task)
        WHERE n.sae_key = ? ORDER BY c.task, c.latent, c.class_index""",
    # with each word's split-latent activations as a list in its fold's split-latent order (stored sparse)
    "absorption_words": f"""
        SELECT n.sae_key, w.* EXCLUDE (sae_num), {WORD_SPLIT_ACTS} AS split_acts, v.token AS word
        FROM absorption_words w
        JOIN sae_numbers n USING (sae_num) JOIN saes s ON s.sae_key = n.sae_key
        JOIN vocab v ON v.model_name = s.model_name AND v.token_id = w.token_id
        JOIN sae_letter_folds f ON f.sae_key = n.sae_key AND f.task = w.task AND f.letter = w.letter AND f.fold = w.fold
        LEFT JOIN (SELECT sae_num, task, token_id, {SPLIT_ACT_LISTS} FROM absorption_split_acts GROUP BY ALL) sa
               ON sa.sae_num = w.sae_num AND sa.task = w.task AND sa.token_id = w.token_id
        WHERE n.sae_key = ? ORDER BY w.task, w.metric, w.letter, w.token_id""",
    "letter_probes": """
        SELECT p.* EXCLUDE (weight) FROM letter_probes p JOIN sae_absorption a USING (probe_run_id)
        WHERE a.sae_key = ? ORDER BY p.task, p.letter""",
}


class ExportError(Exception):
    pass


def sae_tasks(con: duckdb.DuckDBPyConnection, sae_key: str) -> list[str]:
    return [row[0] for row in con.execute(SAE_TASKS, [sae_key]).fetchall()]


def saebench_json(con: duckdb.DuckDBPyConnection, sae_key: str, task: str = "first_letter") -> dict:
    sae = con.execute(SAE_ROW, [sae_key]).df()
    summary = con.execute(SAE_SUMMARY, [sae_key, task]).df()
    if sae.empty or summary.empty:
        raise ExportError(f"no {task} absorption results for SAE {sae_key!r} in this database")
    sae_row, row = SaeRow.from_record(sae.iloc[0].to_dict()), summary.iloc[0].to_dict()
    letters = con.execute(SAE_LETTERS, [sae_key, task]).df()
    config = json.loads(row["config"])
    config["model_name"] = sae_row.model_name
    # SAEBench lists the letters its means cover (probe F1 above the cut-off); the others go in our own block
    details = [letter_detail(r) for r in letters.itertuples() if r.included]
    excluded = [letter_detail(r) for r in letters.itertuples() if not r.included]
    return {
        "eval_type_id": EVAL_TYPE_ID if task == "first_letter" else f"absorption_{task}",
        "eval_config": config,
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(datetime.now().timestamp() * 1000),
        "eval_result_metrics": {"mean": {
            "mean_absorption_fraction_score": none_if_nan(row["mean_absorption_fraction"]),
            "mean_full_absorption_score": none_if_nan(row["full_absorption_rate"]),
            "mean_num_split_features": none_if_nan(row["mean_num_split_latents"]),
            "std_dev_absorption_fraction_score": none_if_nan(row["std_absorption_fraction"]),
            "std_dev_full_absorption_score": none_if_nan(row["std_full_absorption"]),
            "std_dev_num_split_features": none_if_nan(row["std_num_split_latents"]),
        }},
        "eval_result_details": details,
        # a string, as SAEBench's schema requires; it names who computed the numbers (not SAEBench)
        "sae_bench_commit_hash": f"absorption-explorer {code_version(con)}",
        "sae_lens_id": sae_row.sae_id or sae_key,
        "sae_lens_release_id": sae_row.release or sae_row.path,
        "sae_lens_version": version("sae-lens"),
        "sae_cfg_dict": {k: getattr(sae_row, k) for k in ("architecture", "d_in", "d_sae", "hook_name", "model_name")},
        # Ours, beyond SAEBench: intervals, the paper's metric and which letters entered the means.
        "absorption_explorer": {
            "task": task,  # first_letter's "letters" below are the task's classes for the other tasks
            "probe_run_id": row["probe_run_id"],  # the probe run (probe_runs) every number was measured against
            # crossfit: every word measured against a probe (and split latents) fitted on the other folds;
            # holdout: SAEBench's 80/20 protocol (comparable with its reference numbers)
            "split_mode": row["split_mode"],
            "n_folds": int(row["n_folds"]),
            "between_fold_sd": {"mean_absorption_fraction": none_if_nan(row["fold_sd_absorption_fraction"]),
                                "full_absorption_rate": none_if_nan(row["fold_sd_full_absorption"]),
                                "paper_absorption_rate": none_if_nan(row["fold_sd_paper_absorption"])},
            "letters_with_unstable_split_latents": letters.loc[letters["split_stability"] < 1, "letter"].tolist(),
            "n_letters_in_means": int(row["n_letters"]),
            "letters_in_means": letters.loc[letters["included"], "letter"].tolist(),
            "mean_absorption_fraction_ci95": [none_if_nan(row["mean_absorption_fraction_low"]), none_if_nan(row["mean_absorption_fraction_high"])],
            "full_absorption_rate_ci95": [none_if_nan(row["full_absorption_rate_low"]), none_if_nan(row["full_absorption_rate_high"])],
            "paper_absorption_rate": none_if_nan(row["paper_absorption_rate"]),
            "paper_absorption_rate_ci95": [none_if_nan(row["paper_absorption_rate_low"]), none_if_nan(row["paper_absorption_rate_high"])],
            # the split-latent rule of these numbers, and the other rule's (docs/split_rule.md: which to cite)
            "split_rule": row.get("split_rule"),
            "other_rule": row.get("other_rule"),
            "other_rule_mean_absorption_fraction": none_if_nan(row.get("other_mean_absorption_fraction")),
            "other_rule_full_absorption_rate": none_if_nan(row.get("other_full_absorption_rate")),
            "excluded_letters": excluded,  # probe F1 at or below the cut-off: not in the means, as in SAEBench
            "mean_main_latent_f1": none_if_nan(row["mean_main_f1"]),
            "mean_probe_f1": none_if_nan(row["mean_probe_f1"]),
        },
    }


def letter_detail(r) -> dict:
    """One sae_letters row as SAEBench's AbsorptionResultDetail."""
    return {
        "first_letter": r.letter,
        "mean_absorption_fraction": none_if_nan(r.mean_absorption_fraction),
        "full_absorption_rate": none_if_nan(r.full_absorption_rate),
        "num_full_absorption": int(r.n_full_absorption),
        "num_probe_true_positives": int(r.n_probe_true_positives),
        "num_split_features": int(r.n_split),
    }


def code_version(con: duckdb.DuckDBPyConnection) -> str:
    found = con.execute("SELECT value FROM meta WHERE key = 'code_version'").fetchall()
    return found[0][0] if found else "unknown"


def none_if_nan(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def export_sae(db_path: Path, sae_key: str, out_dir: Path, saebench_only: bool = False) -> list[Path]:
    """Writes <out>/<key>_eval_results.json (first_letter; <key>_<task>_eval_results.json for every other task
    the SAE was measured on) and <out>/<key>/<table>.parquet|.csv; returns the paths. `saebench_only`: the
    first-letter JSON alone, the file SAEBench's absorption eval writes (check it with validate_with_saebench)."""
    con = duckdb.connect(str(db_path), read_only=True, config={"enable_external_access": False})
    try:
        tasks = sae_tasks(con, sae_key)
        if saebench_only:
            tasks = [task for task in tasks if task == "first_letter"]
        if not tasks:
            raise ExportError(f"no absorption results for SAE {sae_key!r} in this database")
        results = {task: saebench_json(con, sae_key, task) for task in tasks}
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for task, result in results.items():
            suffix = "" if task == "first_letter" else f"_{task}"
            written.append(out_dir / f"{sae_key}{suffix}_eval_results.json")
            written[-1].write_text(json.dumps(result, indent=2, default=str))
        if saebench_only:
            return written
        tables_dir = out_dir / sae_key
        tables_dir.mkdir(exist_ok=True)
        for name, sql in SAE_TABLE_EXPORTS.items():
            frame = con.execute(sql, [sae_key]).df()
            frame.to_parquet(tables_dir / f"{name}.parquet", index=False)
            frame.to_csv(tables_dir / f"{name}.csv", index=False)
            written += [tables_dir / f"{name}.parquet", tables_dir / f"{name}.csv"]
        return written
    finally:
        con.close()


PEER_PYTHON = Path(__file__).resolve().parents[2] / "bench" / "peers" / ".venv-saebench" / "bin" / "python"
VALIDATE = ("import json, sys; from pydantic import TypeAdapter; "
            "from sae_bench.evals.absorption.eval_output import AbsorptionEvalOutput; "
            "TypeAdapter(AbsorptionEvalOutput).validate_python(json.load(open(sys.argv[1])))")


def validate_with_saebench(path: Path) -> str | None:
    """Loads a result JSON with SAEBench's own `AbsorptionEvalOutput` in the SAEBench peer venv (`bash
    bench/peers/setup.sh saebench`; sae-bench's numpy < 2 cannot share our venv). None when it is valid; the
    validation error otherwise; raises FileNotFoundError without the peer venv."""
    import subprocess

    if not PEER_PYTHON.exists():
        raise FileNotFoundError(f"no SAEBench peer venv at {PEER_PYTHON} (bash bench/peers/setup.sh saebench)")
    done = subprocess.run([str(PEER_PYTHON), "-c", VALIDATE, str(path)], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "validation error" in line), max(len(lines) - 1, 0))
    return "; ".join(line.strip() for line in lines[start:] if "errors.pydantic.dev" not in line) or "invalid"
