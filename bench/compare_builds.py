"""Two explorer databases built from the same inputs, compared result by result: the headline numbers per SAE and
task, split latents per class, per-word verdicts and absorbers, latents' firing counts and max activations, the
model check and the probe's true positives. Prints each difference it finds, with counts.

    python bench/compare_builds.py assets/demo.duckdb /tmp/build/p/assets/demo.duckdb
"""

from __future__ import annotations

import argparse

import duckdb

HEADLINES = ("mean_absorption_fraction", "full_absorption_rate", "paper_absorption_rate", "mean_num_split_latents",
             "mean_probe_f1", "other_absorption_fraction")

# (what, SQL over old.* and new.*): each query returns rows that differ (empty: identical)
CHECKS = {
    "headline rows (SAE x task) whose numbers differ by more than 5e-4": f"""
        SELECT o.sae_key, o.task, {", ".join(f"round(o.{c}, 4) AS old_{c}, round(n.{c}, 4) AS new_{c}" for c in HEADLINES)}
        FROM old.sae_absorption o JOIN new.sae_absorption n USING (sae_key, task)
        WHERE {" OR ".join(f"abs(coalesce(o.{c}, 0) - coalesce(n.{c}, 0)) > 5e-4" for c in HEADLINES)}""",
    "classes whose split latents or main latent differ": """
        SELECT o.sae_key, o.task, o.letter, o.split_latents AS old_split, n.split_latents AS new_split,
               o.main_latent AS old_main, n.main_latent AS new_main
        FROM old.sae_letters o JOIN new.sae_letters n USING (sae_key, task, letter)
        WHERE o.split_latents <> n.split_latents OR o.main_latent <> n.main_latent""",
    "absorption words in only one build": """
        SELECT coalesce(o.sae_key, n.sae_key) AS sae_key, coalesce(o.task, n.task) AS task,
               coalesce(o.metric, n.metric) AS metric, coalesce(o.token_id, n.token_id) AS token_id,
               o.token_id IS NOT NULL AS in_old, n.token_id IS NOT NULL AS in_new
        FROM old_words o FULL JOIN new_words n USING (sae_key, task, metric, token_id)
        WHERE o.token_id IS NULL OR n.token_id IS NULL""",
    "absorption words in both whose verdict or absorber differs": """
        SELECT o.sae_key, o.task, o.metric, o.token_id, o.is_full_absorption AS old_full, n.is_full_absorption AS new_full,
               o.absorber AS old_absorber, n.absorber AS new_absorber
        FROM old_words o JOIN new_words n USING (sae_key, task, metric, token_id)
        WHERE o.is_full_absorption IS DISTINCT FROM n.is_full_absorption OR o.absorber IS DISTINCT FROM n.absorber""",
    "latents whose firing count differs": """
        SELECT o.sae_key, o.latent, o.n_fired::BIGINT AS old_n, n.n_fired::BIGINT AS new_n
        FROM old_latents o JOIN new_latents n USING (sae_key, latent) WHERE o.n_fired <> n.n_fired""",
    "latents whose max activation differs by more than 0.1 %": """
        SELECT o.sae_key, o.latent, o.max_act AS old_max, n.max_act AS new_max
        FROM old_latents o JOIN new_latents n USING (sae_key, latent)
        WHERE abs(o.max_act - n.max_act) > 1e-3 * greatest(abs(o.max_act), 1e-6)""",
    "letters whose model-check accuracy differs": """
        SELECT o.hook_name, o.task, o.letter, o.model_accuracy AS old_acc, n.model_accuracy AS new_acc
        FROM old.letter_probes o JOIN new.letter_probes n USING (hook_name, task, letter)
        WHERE abs(o.model_accuracy - n.model_accuracy) > 1e-9""",
    "probe words whose probe verdict (logit > 0) or model answer differs": """
        SELECT o.token_id, r.hook_name, r.task, o.probe_logit AS old_logit, n.probe_logit AS new_logit,
               o.model_correct AS old_correct, n.model_correct AS new_correct
        FROM old.probe_words o JOIN old.probe_runs r USING (probe_run_id)
        JOIN new.probe_runs s ON s.hook_name = r.hook_name AND s.task = r.task
        JOIN new.probe_words n ON n.probe_run_id = s.probe_run_id AND n.token_id = o.token_id AND n.letter = o.letter
        WHERE (o.probe_logit > 0) <> (n.probe_logit > 0) OR o.model_correct IS DISTINCT FROM n.model_correct""",
}

# the tables keyed by an SAE's number in its own build, seen by its key (numbers are assigned per build)
KEYED_VIEWS = """
CREATE TEMP VIEW {side}_words AS SELECT k.sae_key, w.* EXCLUDE (sae_num) FROM {side}.absorption_words w
    JOIN {side}.sae_numbers k USING (sae_num);
CREATE TEMP VIEW {side}_latents AS SELECT k.sae_key, l.* EXCLUDE (sae_num) FROM {side}.latents l
    JOIN {side}.sae_numbers k USING (sae_num);
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--show", type=int, default=8, help="rows to print per difference")
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute("ATTACH ? AS old (READ_ONLY)", [args.old])
    con.execute("ATTACH ? AS new (READ_ONLY)", [args.new])
    for side in ("old", "new"):
        con.execute(KEYED_VIEWS.format(side=side))
    for table in ("sae_absorption", "sae_letters", "absorption_words", "latents", "letter_probes", "probe_words"):
        old, new = (con.execute(f"SELECT count(*) FROM {s}.{table}").fetchone()[0] for s in ("old", "new"))
        print(f"{table}: {old:,} rows old, {new:,} new")
    deltas = con.execute("SELECT " + ", ".join(f"max(abs(o.{c} - n.{c}))" for c in HEADLINES)
                         + " FROM old.sae_absorption o JOIN new.sae_absorption n USING (sae_key, task)").fetchone()
    print("largest headline difference: " + ", ".join(f"{c} {d:.1e}" for c, d in zip(HEADLINES, deltas) if d is not None))
    fired = con.execute("""SELECT o.sae_key, count(*), max(abs(o.n_fired::BIGINT - n.n_fired::BIGINT)), sum(o.n_fired)
                           FROM old_latents o JOIN new_latents n USING (sae_key, latent)
                           WHERE o.n_fired <> n.n_fired GROUP BY o.sae_key ORDER BY o.sae_key""").fetchall()
    print("firing counts that differ, per SAE (latents, largest |diff|): "
          + ("; ".join(f"{key} {n} ({d})" for key, n, d, _ in fired) or "none"))
    for what, sql in CHECKS.items():
        rows = con.execute(sql).fetchall()
        names = [d[0] for d in con.description]
        print(f"\n{what}: {len(rows):,}")
        for row in rows[: args.show]:
            print("  " + ", ".join(f"{n}={v}" for n, v in zip(names, row)))


if __name__ == "__main__":
    main()
