"""`python -m precompute migrate`: a schema-v6 database (SAEBench's 80/20 split, no folds) or v7 (top-latent lists
per absorbed word) opens in this version's explorer after the upgrade, with every row kept, the fold columns saying
what v6 did and each word's absorber what v7's views computed from its lists."""

from __future__ import annotations

import json

import duckdb
import pytest

from backend.database import DatabaseError, ExplorerDB
from backend.queries import SPLIT_ACT_LISTS, WORD_SPLIT_ACTS
from contract.schema import ACTIVATION_LEVELS, COS_SCALE
from precompute.pipeline.migrate import migrate
from precompute.storage.writer import SchemaMismatchError
from tests import helpers

V7_ONLY_COLUMNS = {
    "probe_runs": ["split_mode", "n_folds"], "letter_probes": ["fold_direction_cos"], "probe_words": ["fold"],
    "sae_absorption": ["split_mode", "n_folds", "fold_sd_absorption_fraction", "fold_sd_full_absorption",
                       "fold_sd_paper_absorption", "n_unstable_letters"],
    "sae_letters": ["split_stability", "main_stability"], "absorption_words": ["fold"],
}
V7_ONLY_TABLES = ["probe_folds", "sae_letter_folds", "token_latents", "token_letters", "token_occurrences"]


ABSORBERS = ("SELECT sae_key, metric, token_id, absorber, absorber_act, absorber_score FROM absorption_words "
             "JOIN sae_numbers USING (sae_num) ORDER BY ALL")


LATENT_LISTS = ("hist_counts", "top_logit_ids", "top_logit_values", "bottom_logit_ids", "bottom_logit_values",
                "neighbor_ids", "neighbor_cosines")
LETTER_COSINES = ("SELECT sae_key, latent, letter, decoder_cos, encoder_cos FROM latent_letter_cos "
                  "ORDER BY sae_key, latent, letter")
KEYED_MATCHES = ("SELECT a.sae_key, m.latent, b.sae_key, m.other_latent, m.cosine FROM latent_matches m "
                 "JOIN sae_numbers a ON a.sae_num = m.sae_num JOIN sae_numbers b ON b.sae_num = m.other_sae_num "
                 "ORDER BY ALL")
# Rows by SAE key, whatever the SAEs' numbers (a migration numbers them anew)
KEYED_LATENTS = "SELECT n.sae_key, l.* EXCLUDE (sae_num) FROM latents l JOIN sae_numbers n USING (sae_num) ORDER BY ALL"
# latent_letter_cos as v11 stored it: a row per latent, its cosines (thousandths) a list over the task's classes
PER_LATENT_COSINES = f"""
SELECT sae_num, task, probe_run_id, latent, list(d * {1000 // COS_SCALE} ORDER BY class_index)::SMALLINT[] AS decoder_cos,
       list(e * {1000 // COS_SCALE} ORDER BY class_index)::SMALLINT[] AS encoder_cos
FROM (SELECT sae_num, task, probe_run_id, class_index, first_latent + generate_subscripts(decoder_cos, 1) - 1 AS latent,
             unnest(decoder_cos) AS d, unnest(encoder_cos) AS e FROM latent_letter_cos)
GROUP BY ALL"""
KEYED_COSINES = (f"SELECT n.sae_key, c.latent, c.decoder_cos, c.encoder_cos FROM ({PER_LATENT_COSINES}) c "
                 "JOIN sae_numbers n USING (sae_num) ORDER BY ALL")


TASK_TABLES = ("probe_runs", "letter_probes", "probe_folds", "probe_words", "sae_absorption", "sae_letters",
               "sae_letter_folds", "sae_letter_k", "latent_letter_cos", "absorption_words", "score_validation")


def v9_config(config: str) -> str:
    """An AbsorptionConfig JSON as v9 stored it: no task, the prompt's answer as a format string."""
    data = json.loads(config)
    data.pop("task", None)
    if "prompts" in data:  # the fake sweep database's config is "{}"
        prompts = data["prompts"]
        del prompts["classes"], prompts["answers"]
        prompts["answer"] = " {letter}"
    return json.dumps(data, sort_keys=True)


TRUTH_TABLES = ("truth_features", "truth_words", "truth_latents")
CONFIG_LESS = {"probe_runs": " EXCLUDE (config)", "sae_absorption": " EXCLUDE (config)"}


# Every window level of every latent, by SAE key and corpus position: the stored rows, named by their context, and
# the contexts' own tokens at the level their act gives where no stored row says otherwise (as the reader does).
WINDOW_LEVELS = f"""
WITH numbered AS (
    SELECT *, row_number() OVER (PARTITION BY sae_num, latent ORDER BY kind, rank) - 1 AS context FROM contexts),
stored AS (
    SELECT w.sae_num, w.latent, c.seq_id, (c.pos + w.rel_pos)::USMALLINT AS pos, w.level
    FROM window_acts w JOIN numbered c USING (sae_num, latent, context)),
centers AS (
    SELECT DISTINCT c.sae_num, c.latent, c.seq_id, c.pos, least({ACTIVATION_LEVELS}, greatest(1, round_even(
               c.act::DOUBLE / (CASE WHEN l.max_act > 0 THEN l.max_act ELSE 1 END)::DOUBLE * {ACTIVATION_LEVELS}, 0)))::UTINYINT AS level
    FROM contexts c JOIN latents l USING (sae_num, latent)),
levels AS (
    SELECT * FROM stored
    UNION ALL SELECT * FROM centers c ANTI JOIN stored s USING (sae_num, latent, seq_id, pos))
SELECT sae_num, latent, seq_id, pos, level FROM levels"""
KEYED_WINDOW_LEVELS = (f"SELECT n.sae_key, w.* EXCLUDE (sae_num) FROM ({WINDOW_LEVELS}) w "
                       "JOIN sae_numbers n USING (sae_num) ORDER BY ALL")


# Each absorption word with its split-latent activations as a list (zeros included), as v11 stored them
WORDS_WITH_SPLIT_ACTS = f"""
SELECT w.* EXCLUDE (absorption_fraction, is_full_absorption, is_absorption, absorber, absorber_act, absorber_score),
       {WORD_SPLIT_ACTS} AS split_acts, w.absorption_fraction, w.is_full_absorption, w.is_absorption, w.absorber,
       w.absorber_act, w.absorber_score
FROM absorption_words w
JOIN sae_numbers n USING (sae_num)
JOIN sae_letter_folds f ON f.sae_key = n.sae_key AND f.task = w.task AND f.letter = w.letter AND f.fold = w.fold
LEFT JOIN (SELECT sae_num, task, token_id, {SPLIT_ACT_LISTS} FROM absorption_split_acts GROUP BY ALL) sa
       ON sa.sae_num = w.sae_num AND sa.task = w.task AND sa.token_id = w.token_id"""
KEYED_SPLIT_ACTS = ("SELECT n.sae_key, w.task, w.metric, w.token_id, w.split_acts "
                    f"FROM ({WORDS_WITH_SPLIT_ACTS}) w JOIN sae_numbers n USING (sae_num) ORDER BY ALL")


def as_v11(path) -> None:
    """The database as schema v11 wrote it: window_acts a row per corpus position (seq_id, pos), contexts' own
    tokens included; each absorption word's split-latent activations a list (zeros included)."""
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE w11 AS SELECT * FROM ({WINDOW_LEVELS}) ORDER BY ALL")
        con.execute("DROP TABLE window_acts")
        con.execute("ALTER TABLE w11 RENAME TO window_acts")
        con.execute(f"CREATE TABLE a11 AS {WORDS_WITH_SPLIT_ACTS} ORDER BY w.sae_num, w.task, w.metric, w.token_id")
        con.execute("DROP TABLE absorption_words")
        con.execute("DROP TABLE absorption_split_acts")
        con.execute("ALTER TABLE a11 RENAME TO absorption_words")
        con.execute(f"CREATE TABLE c11 AS {PER_LATENT_COSINES} ORDER BY sae_num, task, latent")
        con.execute("DROP TABLE latent_letter_cos")
        con.execute("ALTER TABLE c11 RENAME TO latent_letter_cos")
        con.execute("UPDATE meta SET value = '11' WHERE key = 'schema_version'")


def as_v10(path) -> None:
    """The database as schema v10 wrote it: no ground-truth tables (the toy run came in v11)."""
    as_v11(path)
    with duckdb.connect(str(path)) as con:
        for table in TRUTH_TABLES:
            con.execute(f"DROP TABLE {table}")
        con.execute("UPDATE meta SET value = '10' WHERE key = 'schema_version'")


def as_v9(path) -> None:
    """The database as schema v9 wrote it: first letters only, so no task column or tasks table, each latent's
    letter cosines as SMALLINT[26], and absorption configs without a task."""
    as_v10(path)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE tasks")
        for table in TASK_TABLES:
            if table == "probe_words":  # its task is its probe run's since v12: nothing to drop
                continue
            cos = (", decoder_cos::SMALLINT[26] AS decoder_cos, encoder_cos::SMALLINT[26] AS encoder_cos"
                   if table == "latent_letter_cos" else "")
            con.execute(f"CREATE TABLE t9 AS SELECT * EXCLUDE (task{', decoder_cos, encoder_cos' if cos else ''}){cos} "
                        f"FROM {table} ORDER BY rowid")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE t9 RENAME TO {table}")
        for table in ("probe_runs", "sae_absorption"):
            for (config,) in con.execute(f"SELECT DISTINCT config FROM {table}").fetchall():
                con.execute(f"UPDATE {table} SET config = ? WHERE config = ?", [v9_config(config), config])
        con.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")


def as_v8(path) -> None:
    """The database as schema v8 wrote it: no probe-free score tables, SAEs named by key everywhere (no
    sae_numbers), the latents' lists as LISTs (a tiny SAE's neighbours unpadded) and a latent_letter_cos row per
    latent and letter, REAL cosines; migrated before (as the shipped demo)."""
    as_v9(path)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE latent_scores")
        con.execute("DROP TABLE score_validation")
        con.execute("INSERT INTO meta VALUES ('migrated_from', '7')")
        numbered = [row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'sae_num' AND table_name <> 'saes' "
            "AND table_name <> 'sae_numbers'").fetchall()]
        for table in numbered:
            other = table == "latent_matches"
            con.execute(f"""CREATE TABLE keyed AS SELECT n.sae_key, t.* EXCLUDE (sae_num{", other_sae_num" if other else ""})
                            {", o.sae_key AS other_sae_key" if other else ""}
                            FROM {table} t JOIN sae_numbers n ON n.sae_num = t.sae_num
                            {"JOIN sae_numbers o ON o.sae_num = t.other_sae_num" if other else ""}""")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE keyed RENAME TO {table}")
        con.execute("DROP TABLE sae_numbers")
        con.execute("ALTER TABLE saes DROP COLUMN sae_num")
        lists = ", ".join(f"{c}::{'REAL' if 'values' in c or 'cosines' in c else 'INTEGER'}[] AS {c}"
                          for c in LATENT_LISTS if not c.startswith("neighbor"))
        con.execute(f"""CREATE TABLE l8 AS SELECT * REPLACE ({lists},
                            list_filter(neighbor_ids::INTEGER[], lambda x: x >= 0) AS neighbor_ids,
                            list_filter(neighbor_cosines::REAL[], lambda x: x IS NOT NULL) AS neighbor_cosines)
                        FROM latents""")
        con.execute("DROP TABLE latents")
        con.execute("ALTER TABLE l8 RENAME TO latents")
        con.execute("""CREATE TABLE c8 AS SELECT sae_key, probe_run_id, latent, chr(96 + i::INTEGER) AS letter,
                            (decoder_cos[i] / 1000)::REAL AS decoder_cos, (encoder_cos[i] / 1000)::REAL AS encoder_cos
                        FROM latent_letter_cos, range(1, 27) AS letters(i)""")
        con.execute("DROP TABLE latent_letter_cos")
        con.execute("ALTER TABLE c8 RENAME TO latent_letter_cos")
        con.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")


def test_migrate_from_v8_numbers_the_saes_and_keeps_every_latent_and_letter_cosine(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        latents = con.execute(KEYED_LATENTS).fetchall()
        cosines = con.execute(KEYED_COSINES).fetchall()
        matches = con.execute(KEYED_MATCHES).fetchall()
    as_v8(path)
    with duckdb.connect(str(path), read_only=True) as con:
        v8_cosines = con.execute(LETTER_COSINES).fetchall()
        by_creation = [row[0] for row in con.execute("SELECT sae_key FROM saes ORDER BY created_at, sae_key").fetchall()]
    assert len(v8_cosines) == 26 * len(cosines)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        assert db._rows(KEYED_LATENTS) == latents
        assert db._rows(KEYED_COSINES) == cosines
        assert db._rows(KEYED_MATCHES) == matches and matches
        assert [row[0] for row in db._rows("SELECT sae_key FROM sae_numbers ORDER BY sae_num")] == by_creation
        assert db._rows("SELECT count(*) FROM saes s JOIN sae_numbers n USING (sae_key, sae_num)")[0][0] == len(by_creation)
        key, latent, letter, decoder, encoder = v8_cosines[27]  # the second latent's letter 'b'
        shown = db.latent_letter_cos(key, latent).set_index("letter").loc[letter]
        assert (shown.decoder_cos, shown.encoder_cos) == pytest.approx((decoder, encoder), abs=5e-4)
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("8",)]
    finally:
        db.close()


def as_v7(path) -> None:
    """The database as schema v7 wrote it: each word's top latents, activations and scores as lists, from which
    the views took the first latent that is not a split latent. Here every list starts with the word's split
    latents (as a partial absorption's can), so only that rule finds the absorber; cosines carry a 4th decimal."""
    as_v8(path)
    with duckdb.connect(str(path)) as con:
        con.execute("""
            CREATE TABLE w7 AS
            SELECT w.* EXCLUDE (absorber, absorber_act, absorber_score),
                   list_concat(f.split_latents, [w.absorber]) AS top_latents,
                   list_concat(list_transform(f.split_latents, lambda x: 9.0), [w.absorber_act]) AS top_acts,
                   list_concat(list_transform(f.split_latents, lambda x: 0.9), [w.absorber_score]) AS top_scores
            FROM absorption_words w
            JOIN sae_letter_folds f ON f.sae_key = w.sae_key AND f.letter = w.letter AND f.fold = w.fold""")
        con.execute("DROP TABLE absorption_words")
        con.execute("ALTER TABLE w7 RENAME TO absorption_words")
        con.execute("UPDATE latent_letter_cos SET decoder_cos = decoder_cos + 0.0004, encoder_cos = encoder_cos - 0.0004")
        con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")


def as_v6(path) -> None:
    """The database as schema v6 wrote it: without the fold columns and tables (sae_letter_k's fold is part
    of its primary key, so that table is rebuilt without it)."""
    as_v7(path)
    with duckdb.connect(str(path)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in V7_ONLY_TABLES:
            if table in tables:
                con.execute(f"DROP TABLE {table}")
        for table, columns in V7_ONLY_COLUMNS.items():
            for column in columns:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("CREATE TABLE k6 AS SELECT * EXCLUDE (fold) FROM sae_letter_k")
        con.execute("DROP TABLE sae_letter_k")
        con.execute("ALTER TABLE k6 RENAME TO sae_letter_k")
        con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")


@pytest.fixture
def v6_database(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("saes", "latents", "sae_letters", "absorption_words", "probe_words", "sae_letter_k")}
    as_v6(path)
    return path, counts


def test_a_v6_database_is_refused_with_the_migrate_command(v6_database):
    path, _ = v6_database
    with pytest.raises(DatabaseError, match="precompute migrate"):
        ExplorerDB(path)


def test_migrate_keeps_every_row_and_marks_it_holdout(v6_database):
    path, counts = v6_database
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)  # opens: the schema version matches
    try:
        for table, n in counts.items():
            assert db._rows(f"SELECT count(*) FROM {table}")[0][0] == n, table
        assert db._rows("SELECT DISTINCT split_mode, n_folds FROM sae_absorption") == [("holdout", 1)]
        assert db._rows("SELECT count(*) FROM probe_words WHERE (fold = 0) <> is_test OR (fold IS NULL) <> NOT is_test")[0][0] == 0
        # one fold per letter, holding exactly the letter's split latents
        assert db._rows("""SELECT count(*) FROM sae_letter_folds f JOIN sae_letters l USING (sae_key, letter)
                           WHERE f.fold = 0 AND f.split_latents = l.split_latents""")[0][0] == counts["sae_letters"]
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("6",)]
        assert not db._rows("SELECT * FROM meta WHERE key = 'build_base'")
    finally:
        db.close()
    assert not migrate(path, log=lambda *_: None)  # already current: nothing to do


def test_no_migration_from_an_unknown_version(v6_database):
    path, _ = v6_database
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatchError, match="--fresh"):
        migrate(path, log=lambda *_: None)


def test_migrate_from_v7_keeps_each_word_s_absorber_and_rounds_the_cosines(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        absorbers = con.execute(ABSORBERS).fetchall()
        cosines = con.execute("SELECT * FROM latent_letter_cos ORDER BY ALL").fetchall()
    assert any(row[3] is not None for row in absorbers)
    as_v7(path)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        assert db._rows(ABSORBERS) == absorbers  # the split latents ahead of it in the list are skipped
        assert db._rows("SELECT * FROM latent_letter_cos ORDER BY ALL") == cosines  # the 4th decimal dropped
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("7",)]
    finally:
        db.close()


SCORES = ("SELECT sae_key, latent, enc_dec_score, parent_score, parent_latent FROM latent_scores "
          "JOIN sae_numbers USING (sae_num) ORDER BY ALL")
VALIDATION = "SELECT * FROM score_validation ORDER BY ALL"


def test_migrate_from_v8_computes_the_probe_free_scores_from_the_sae_weights(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        scores, validation = con.execute(SCORES).fetchall(), con.execute(VALIDATION).fetchall()
    assert {row[0] for row in scores} == {s.key for s in helpers.SWEEP}
    assert {row[0] for row in validation} == set(helpers.SWEEP_ABSORPTION)
    as_v8(path)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        assert db._rows(SCORES) == scores  # as the build computed them
        assert db._rows(VALIDATION) == validation
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("8",)]
    finally:
        db.close()


def test_an_sae_whose_weights_are_gone_is_left_unscored(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    as_v8(path)
    (tmp_path / "w16" / "sae_weights.safetensors").unlink()
    logged = []
    assert migrate(path, log=logged.append)
    db = ExplorerDB(path)
    try:
        assert "w16" not in db.scored_sae_keys() and "w8" in db.scored_sae_keys()
        assert any("cannot load w16" in line for line in logged)
    finally:
        db.close()


def test_migrate_from_v9_names_every_result_first_letter_and_keeps_its_probes_reusable(tmp_path):
    from precompute.absorption.config import AbsorptionConfig, config_for_task
    from precompute.absorption.tables import config_json

    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = {t: con.execute(f"SELECT * EXCLUDE (config) FROM {t} ORDER BY ALL" if t in ("probe_runs", "sae_absorption")
                               else f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TASK_TABLES}
    as_v9(path)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        for table, before in rows.items():
            config = " EXCLUDE (config)" if table in ("probe_runs", "sae_absorption") else ""
            assert db._rows(f"SELECT *{config} FROM {table} ORDER BY ALL") == before, table
        assert db._rows("SELECT DISTINCT task FROM sae_absorption") == [("first_letter",)]
        assert db._rows("SELECT task, classes[1], answers[26], prompt_template FROM tasks") == [
            ("first_letter", "a", " Z", "{word} has the first letter:")]
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("9",)]
    finally:
        db.close()
    # a stored default config reads as the one a build with the same settings writes, so its probes are reused
    fresh = config_json(config_for_task(AbsorptionConfig(), "first_letter"))
    assert json.loads(v9_config(fresh)) and migrate_config_roundtrip(fresh) == fresh


def migrate_config_roundtrip(config: str) -> str:
    from precompute.pipeline.migrate import config_with_task

    return config_with_task(v9_config(config))


def test_migrate_from_v10_adds_the_empty_ground_truth_tables_and_keeps_every_row(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        # (a config without a task, as the fake database's "{}", is given one: compared without it)
        before = {t: con.execute(f"SELECT *{CONFIG_LESS.get(t, '')} FROM {t} ORDER BY ALL").fetchall()
                  for t in TASK_TABLES}
    as_v10(path)
    with pytest.raises(DatabaseError, match="precompute migrate"):
        ExplorerDB(path)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        for table, rows in before.items():
            assert db._rows(f"SELECT *{CONFIG_LESS.get(table, '')} FROM {table} ORDER BY ALL") == rows, table
        for table in TRUTH_TABLES:
            assert db._rows(f"SELECT count(*) FROM {table}") == [(0,)], table
        assert not any(db.has_truth(key) for key in db.sae_keys())
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("10",)]
    finally:
        db.close()


def test_migrate_from_v11_keeps_every_window_level_split_activation_and_cosine_in_fewer_rows(tmp_path):
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        levels = con.execute(KEYED_WINDOW_LEVELS).fetchall()
        split_acts = con.execute(KEYED_SPLIT_ACTS).fetchall()
        cosines = con.execute(KEYED_COSINES).fetchall()
        stored_cosines = con.execute("SELECT * EXCLUDE (sae_num) FROM latent_letter_cos ORDER BY ALL").fetchall()
        contexts = con.execute("SELECT count(*) FROM contexts").fetchone()[0]
    as_v11(path)
    with duckdb.connect(str(path), read_only=True) as con:
        v11_rows = con.execute("SELECT count(*) FROM window_acts").fetchone()[0]
    assert v11_rows == len(levels) and contexts > 0
    with pytest.raises(DatabaseError, match="precompute migrate"):
        ExplorerDB(path)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        assert db._rows(KEYED_WINDOW_LEVELS) == levels, "every level of every window, as before"
        assert db._rows(KEYED_SPLIT_ACTS) == split_acts, "every word's split-latent activations, as before"
        assert db._rows(KEYED_COSINES) == cosines
        assert db._rows("SELECT * EXCLUDE (sae_num) FROM latent_letter_cos ORDER BY ALL") == stored_cosines, "as a build writes them"
        assert any(0 < x for *_, acts in split_acts for x in acts) and any(0 == x for *_, acts in split_acts for x in acts)
        (rows,), = db._rows("SELECT count(*) FROM window_acts")
        assert rows < v11_rows, "contexts' own tokens are derived, not stored"
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("11",)]
    finally:
        db.close()


V13_COLUMNS = {
    "sae_absorption": ["split_rule", "other_rule", "other_absorption_fraction", "other_absorption_fraction_low",
                       "other_absorption_fraction_high", "other_full_absorption_rate", "other_full_absorption_rate_low",
                       "other_full_absorption_rate_high", "n_rule_changed_letters", "n_main_outside_split"],
    "sae_letters": ["main_in_split", "other_split_latents", "other_absorption_fraction", "other_full_absorption_rate"],
    "sae_letter_folds": ["other_split_latents"],
}


def test_migrate_from_v12_says_every_result_used_saebench_s_split_rule_and_flags_main_latents(tmp_path):
    """v12 chose split latents by SAEBench's L1 ranking only: a migrated database says so (split_rule 'l1', no other
    rule measured) and reads main_in_split off each class's row."""
    path = helpers.build_sweep_database(tmp_path)
    with duckdb.connect(str(path)) as con:
        # one class whose main latent is not a split latent (the fake database's are all inside)
        con.execute("UPDATE sae_letters SET split_latents = [main_latent + 1] WHERE rowid = (SELECT min(rowid) FROM sae_letters)")
        letters = con.execute("SELECT sae_key, task, letter, list_contains(split_latents, main_latent) FROM sae_letters "
                              "ORDER BY ALL").fetchall()
        for table, columns in V13_COLUMNS.items():
            for column in columns:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("UPDATE meta SET value = '12' WHERE key = 'schema_version'")
    assert any(not inside for *_, inside in letters) and any(inside for *_, inside in letters)
    assert migrate(path, log=lambda *_: None)
    db = ExplorerDB(path)
    try:
        assert db._rows("SELECT DISTINCT split_rule, other_rule, other_absorption_fraction FROM sae_absorption") == [
            ("l1", None, None)]
        assert db._rows("SELECT sae_key, task, letter, main_in_split FROM sae_letters ORDER BY ALL") == letters
        assert db._rows("SELECT count(*) FROM sae_letter_folds WHERE other_split_latents IS NOT NULL") == [(0,)]
        assert db._rows("SELECT value FROM meta WHERE key = 'migrated_from'") == [("12",)]
    finally:
        db.close()
