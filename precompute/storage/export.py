"""Export one SAE's absorption results: SAEBench-style JSON (same field names as SAEBench's
absorption eval output) plus every absorption table as Parquet and CSV, for round trips and for
comparing our numbers with SAEBench's."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import duckdb
import pandas as pd

EVAL_TYPE_ID = "absorption_first_letter"  # SAEBench's EVAL_TYPE_ID_ABSORPTION

SAE_ROW = "SELECT * FROM saes WHERE sae_key = ?"
SAE_SUMMARY = "SELECT * FROM sae_absorption WHERE sae_key = ?"
SAE_LETTERS = "SELECT * FROM sae_letters WHERE sae_key = ? ORDER BY letter"
# Per-SAE tables exported as files: name -> query (one bound parameter, the SAE key).
SAE_TABLE_EXPORTS = {
    "sae_letters": SAE_LETTERS,
    "sae_letter_folds": "SELECT * FROM sae_letter_folds WHERE sae_key = ? ORDER BY letter, fold",
    "sae_letter_k": "SELECT * FROM sae_letter_k WHERE sae_key = ? ORDER BY letter, fold, k",
    # exported a row per latent and letter with plain cosines, as users read it (stored as thousandths arrays)
    "latent_letter_cos": """
        SELECT n.sae_key, c.probe_run_id, c.latent, chr(96 + i::INTEGER) AS letter, c.decoder_cos[i] / 1000 AS decoder_cos,
               c.encoder_cos[i] / 1000 AS encoder_cos
        FROM latent_letter_cos c JOIN sae_numbers n USING (sae_num), range(1, 27) AS letters(i)
        WHERE n.sae_key = ? ORDER BY c.latent, i""",
    "absorption_words": """
        SELECT n.sae_key, w.* EXCLUDE (sae_num), v.token AS word FROM absorption_words w
        JOIN sae_numbers n USING (sae_num) JOIN saes s ON s.sae_key = n.sae_key
        JOIN vocab v ON v.model_name = s.model_name AND v.token_id = w.token_id
        WHERE n.sae_key = ? ORDER BY w.metric, w.letter, w.token_id""",
    "letter_probes": """
        SELECT p.* EXCLUDE (weight) FROM letter_probes p JOIN sae_absorption a USING (probe_run_id)
        WHERE a.sae_key = ? ORDER BY p.letter""",
}


class ExportError(Exception):
    pass


def saebench_json(con: duckdb.DuckDBPyConnection, sae_key: str) -> dict:
    sae = con.execute(SAE_ROW, [sae_key]).df()
    summary = con.execute(SAE_SUMMARY, [sae_key]).df()
    if sae.empty or summary.empty:
        raise ExportError(f"no absorption results for SAE {sae_key!r} in this database")
    sae_row, row = sae.iloc[0].to_dict(), summary.iloc[0].to_dict()
    letters = con.execute(SAE_LETTERS, [sae_key]).df()
    config = json.loads(row["config"])
    config["model_name"] = sae_row["model_name"]
    details = [{
        "first_letter": r.letter,
        "mean_absorption_fraction": none_if_nan(r.mean_absorption_fraction),
        "full_absorption_rate": none_if_nan(r.full_absorption_rate),
        "num_full_absorption": int(r.n_full_absorption),
        "num_probe_true_positives": int(r.n_probe_true_positives),
        "num_split_features": int(r.n_split),
    } for r in letters.itertuples()]
    return {
        "eval_type_id": EVAL_TYPE_ID,
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
        "sae_bench_commit_hash": None,  # computed by absorption-explorer, not by SAEBench
        "sae_lens_id": sae_row["sae_id"] or sae_key,
        "sae_lens_release_id": sae_row["release"] or sae_row["path"],
        "sae_lens_version": version("sae-lens"),
        "sae_cfg_dict": {k: sae_row[k] for k in ("architecture", "d_in", "d_sae", "hook_name", "model_name")},
        # Ours, beyond SAEBench: intervals, the paper's metric and which letters entered the means.
        "absorption_explorer": {
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
            "mean_main_latent_f1": none_if_nan(row["mean_main_f1"]),
            "mean_probe_f1": none_if_nan(row["mean_probe_f1"]),
        },
    }


def none_if_nan(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def export_sae(db_path: Path, sae_key: str, out_dir: Path) -> list[Path]:
    """Writes <out>/<key>_eval_results.json and <out>/<key>/<table>.parquet|.csv; returns the paths."""
    con = duckdb.connect(str(db_path), read_only=True, config={"enable_external_access": False})
    try:
        result = saebench_json(con, sae_key)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [out_dir / f"{sae_key}_eval_results.json"]
        written[0].write_text(json.dumps(result, indent=2, default=str))
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
