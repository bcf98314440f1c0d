"""Every query the explorer runs, as named constants. Values are always bound parameters (`?`)."""

from contract.fragments import SPLIT_ACT_LISTS, TOKEN_LETTER, WORD_SPLIT_ACTS
from contract.schema import COS_BLOCK, COS_SCALE
from contract.schema import SAE_NUM_OF_KEY as NUM  # a bound SAE key -> its number in the large tables
from contract.vocabulary import measured_word_sql

META = "SELECT key, value FROM meta"
TABLE_NAMES = "SELECT table_name FROM information_schema.tables"

LIST_SAES = """
SELECT sae_key, model_name, hook_name, layer, architecture, training_architecture, d_in, d_sae, source, path,
       release, sae_id,
       corpus, n_tokens, explained_variance, mse, l0, n_dead, dead_fraction,
       context_left, context_right, hist_bins, created_at
FROM saes ORDER BY model_name, layer, d_sae, l0, sae_key
"""
GET_SAE = """
SELECT sae_key, model_name, hook_name, layer, architecture, training_architecture, d_in, d_sae, source, path,
       release, sae_id,
       corpus, n_tokens, explained_variance, mse, l0, n_dead, dead_fraction,
       context_left, context_right, hist_bins, created_at
FROM saes WHERE sae_key = ?
"""

GET_LATENT = f"""
SELECT latent, n_fired, density, max_act, mean_act, hist_counts,
       top_logit_ids, top_logit_values, bottom_logit_ids, bottom_logit_values,
       neighbor_ids, neighbor_cosines
FROM latents WHERE sae_num = {NUM} AND latent = ?
"""

# A latent's contexts in (kind, rank) order, each with its place in that order (window_acts names contexts by it;
# numbered before the join, so a row the join dropped could not shift the others').
LATENT_CONTEXTS = f"""
SELECT c.kind, c.rank, c.seq_id, c.pos, c.act, s.tokens, c.context
FROM (SELECT *, row_number() OVER (ORDER BY kind, rank) - 1 AS context FROM contexts
      WHERE sae_num = {NUM} AND latent = ?) c
JOIN sequences s ON s.model_name = ? AND s.seq_id = c.seq_id
ORDER BY c.kind, c.rank
"""
LATENT_WINDOW_ACTS = f"""
SELECT context, rel_pos, level FROM window_acts WHERE sae_num = {NUM} AND latent = ?
"""

TOKEN_STRINGS = """
SELECT token_id, token FROM vocab WHERE model_name = ? AND token_id IN (SELECT unnest(?::INTEGER[]))
"""

TOKEN_IDS_MATCHING = """
SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?))
"""

LIVE_LATENT_AT = f"""
SELECT latent FROM latents WHERE sae_num = {NUM} AND n_fired > 0 ORDER BY latent LIMIT 1 OFFSET ?
"""
COUNT_LIVE = f"SELECT count(*) FROM latents WHERE sae_num = {NUM} AND n_fired > 0"

# Browse: one statement per sort order keeps the SQL static (no string-built ORDER BY).
_BROWSE_BASE = f"""
SELECT latent, density, max_act, mean_act, n_fired
FROM latents
WHERE sae_num = {NUM} AND density >= ? AND density <= ?
"""
BROWSE_LATENTS = {
    "density_desc": _BROWSE_BASE + " ORDER BY density DESC, latent LIMIT ? OFFSET ?",
    "density_asc": _BROWSE_BASE + " ORDER BY density ASC, latent LIMIT ? OFFSET ?",
    "max_act_desc": _BROWSE_BASE + " ORDER BY max_act DESC, latent LIMIT ? OFFSET ?",
    "latent": _BROWSE_BASE + " ORDER BY latent LIMIT ? OFFSET ?",
}
COUNT_BROWSE = f"SELECT count(*) FROM latents WHERE sae_num = {NUM} AND density >= ? AND density <= ?"
# Latent labels (latent_labels: top tokens by activation mass, written with the dashboards; schema v14).
LATENT_LABEL = f"""
SELECT label, top_token_ids, top_token_shares, explanation, explanation_source FROM latent_labels
WHERE sae_num = {NUM} AND latent = ?
"""
LATENT_LABELS_OF = f"""
SELECT latent, label FROM latent_labels WHERE sae_num = {NUM} AND latent IN (SELECT unnest(?::INTEGER[]))
"""
LABELLED_SAES = "SELECT n.sae_key FROM (SELECT DISTINCT sae_num FROM latent_labels) l JOIN sae_numbers n USING (sae_num)"
# The search box's latents by label text: ? is a LIKE pattern (escaped with '\\'); the default SAE's first, then
# the label whose named tokens carry most of the latent (top_token_shares' sum), then by SAE and latent.
LATENTS_BY_LABEL = """
SELECT n.sae_key, l.latent, l.label FROM latent_labels l JOIN sae_numbers n USING (sae_num)
WHERE l.label ILIKE ? ESCAPE '\\'
ORDER BY n.sae_key <> ?, list_sum(l.top_token_shares[1:3]) DESC, n.sae_key, l.latent LIMIT ?
"""
# Each latent's roles in one SAE, for a list of latents (Browse): as LATENT_MATCH_ROLES counts them.
LATENT_ROLES_OF = f"""
WITH wanted AS (SELECT unnest(?::INTEGER[]) AS latent)
SELECT l.main_latent AS latent, l.task, 'main' AS role, l.letter, NULL::BIGINT AS n_words
FROM sae_letters l WHERE l.sae_key = ? AND l.main_latent IN (SELECT latent FROM wanted)
UNION ALL
SELECT s.latent, s.task, 'split' AS role, s.letter, NULL::BIGINT AS n_words
FROM (SELECT unnest(split_latents) AS latent, task, letter, main_latent FROM sae_letters WHERE sae_key = ?) s
WHERE s.latent IN (SELECT latent FROM wanted) AND s.latent <> s.main_latent
UNION ALL
SELECT w.absorber AS latent, w.task, 'absorber' AS role, w.letter, count(DISTINCT w.token_id) AS n_words
FROM absorption_words w WHERE w.sae_num = {NUM} AND w.absorber IN (SELECT latent FROM wanted)
  AND (w.is_full_absorption OR w.is_absorption)
GROUP BY w.absorber, w.task, w.letter
ORDER BY latent, task <> 'first_letter', task, role, letter
"""
# Browse by a probe-free absorption score: alive latents only (a latent that never fired absorbs nothing).
_BROWSE_BY_SCORE = f"""
SELECT l.latent, s.enc_dec_score, s.parent_score, s.parent_latent, l.density, l.max_act, l.mean_act, l.n_fired
FROM latents l JOIN latent_scores s ON s.sae_num = l.sae_num AND s.latent = l.latent
WHERE l.sae_num = {NUM} AND l.n_fired > 0 AND l.density >= ? AND l.density <= ?
"""
BROWSE_LATENTS["enc_dec"] = _BROWSE_BY_SCORE + " ORDER BY s.enc_dec_score DESC, l.latent LIMIT ? OFFSET ?"
BROWSE_LATENTS["parent"] = _BROWSE_BY_SCORE + " ORDER BY s.parent_score DESC, l.latent LIMIT ? OFFSET ?"
COUNT_BROWSE_BY_SCORE = f"""
SELECT count(*) FROM latents l JOIN latent_scores s ON s.sae_num = l.sae_num AND s.latent = l.latent
WHERE l.sae_num = {NUM} AND l.n_fired > 0 AND l.density >= ? AND l.density <= ?
"""
# One latent's scores with their rank (1 = most suspect) among the SAE's alive latents.
LATENT_SCORES = f"""
WITH alive AS (
    SELECT s.enc_dec_score, s.parent_score, l.density FROM latent_scores s
    JOIN latents l ON l.sae_num = s.sae_num AND l.latent = s.latent
    WHERE s.sae_num = {NUM} AND l.n_fired > 0)
SELECT s.enc_dec_score, s.parent_score, s.parent_latent, l.n_fired > 0 AS alive,
       1 + (SELECT count(*) FROM alive a WHERE a.enc_dec_score > s.enc_dec_score) AS enc_dec_rank,
       1 + (SELECT count(*) FROM alive a WHERE a.parent_score > s.parent_score) AS parent_rank,
       1 + (SELECT count(*) FROM alive a WHERE a.density > l.density) AS density_rank,
       (SELECT count(*) FROM alive) AS n_alive
FROM latent_scores s JOIN latents l ON l.sae_num = s.sae_num AND l.latent = s.latent
WHERE s.sae_num = {NUM} AND s.latent = ?
"""
SCORE_VALIDATION = "SELECT * FROM score_validation WHERE sae_key = ? AND task = ? ORDER BY labels, score"
SCORED_SAES = """
SELECT n.sae_key FROM (SELECT DISTINCT sae_num FROM latent_scores) s JOIN sae_numbers n USING (sae_num) ORDER BY 1
"""
LATENT_SCORES_OF = f"""
SELECT latent, enc_dec_score, parent_score FROM latent_scores WHERE sae_num = {NUM} AND latent IN (SELECT unnest(?::INTEGER[]))
"""

# Without the running-text index (a database migrated from v6): latents whose top contexts peak on a token
# spelled like the query (case and surrounding spaces ignored).
LATENTS_BY_TOP_CONTEXT_TOKEN = f"""
WITH matches AS (SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?)))
SELECT c.latent, count(*) AS hits, max(c.act) AS best_act, any_value(l.density) AS density,
       any_value(l.max_act) AS max_act
FROM contexts c
JOIN sequences s ON s.model_name = ? AND s.seq_id = c.seq_id
JOIN latents l ON l.sae_num = c.sae_num AND l.latent = c.latent
WHERE c.sae_num = {NUM} AND c.kind = 0 AND s.tokens[c.pos + 1] IN (SELECT token_id FROM matches)
GROUP BY c.latent
ORDER BY hits DESC, best_act DESC
LIMIT ?
"""

# Latents whose decoder direction promotes a token spelled like the query (top logits).
LATENTS_BY_LOGIT_TOKEN = f"""
WITH matches AS (SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?))),
ranked AS (
    SELECT l.latent, l.density, l.max_act, u.token_id, u.idx AS logit_rank, l.top_logit_values[u.idx] AS logit
    FROM latents l,
         LATERAL (SELECT unnest(l.top_logit_ids) AS token_id, generate_subscripts(l.top_logit_ids, 1) AS idx) u
    WHERE l.sae_num = {NUM}
)
SELECT latent, min(logit_rank) AS logit_rank, max(logit) AS logit, any_value(density) AS density,
       any_value(max_act) AS max_act
FROM ranked WHERE token_id IN (SELECT token_id FROM matches)
GROUP BY latent
ORDER BY logit DESC
LIMIT ?
"""

# --- absorption, per task (tables at the end of contract/sql/schema.sql) ---------------------------
# Every query over the absorption tables names its task (a bound `task`); the column `letter` holds the class.
ABSORPTION_TABLES = """
SELECT count(*) FROM information_schema.tables
WHERE table_name IN ('tasks', 'probe_runs', 'letter_probes', 'probe_folds', 'probe_words', 'probe_prefixes',
                     'sae_absorption', 'sae_letters', 'sae_letter_folds', 'sae_letter_k', 'latent_letter_cos',
                     'absorption_words')
"""
# The tasks of this database (first_letter first), with how many SAEs have results for each.
TASKS = """
SELECT t.task, t.title, t.description, t.classes, t.answers, t.prompt_template,
       (SELECT count(*) FROM sae_absorption a WHERE a.task = t.task) AS n_saes
FROM tasks t
ORDER BY t.task <> 'first_letter', t.task
"""
# The tasks one SAE was measured on, with their headline numbers (the compare page's per-task summary too).
SAE_TASKS = "SELECT DISTINCT task FROM sae_absorption WHERE sae_key = ? ORDER BY task <> 'first_letter', task"

_SAE_ABSORPTION_COLUMNS = """
a.sae_key, a.task, a.probe_run_id, a.hook_name, a.n_letters,
a.mean_absorption_fraction, a.mean_absorption_fraction_low, a.mean_absorption_fraction_high, a.std_absorption_fraction,
a.full_absorption_rate, a.full_absorption_rate_low, a.full_absorption_rate_high, a.std_full_absorption,
a.paper_absorption_rate, a.paper_absorption_rate_low, a.paper_absorption_rate_high, a.std_paper_absorption,
a.mean_num_split_latents, a.std_num_split_latents,
a.mean_main_precision, a.mean_main_recall, a.mean_main_f1, a.mean_probe_f1,
a.split_mode, a.n_folds, a.fold_sd_absorption_fraction, a.fold_sd_full_absorption, a.fold_sd_paper_absorption,
a.n_unstable_letters, a.split_rule, a.other_rule,
a.other_absorption_fraction, a.other_absorption_fraction_low, a.other_absorption_fraction_high,
a.other_full_absorption_rate, a.other_full_absorption_rate_low, a.other_full_absorption_rate_high,
a.n_rule_changed_letters, a.n_main_outside_split, a.config, a.created_at
"""
SAE_ABSORPTION = f"SELECT {_SAE_ABSORPTION_COLUMNS} FROM sae_absorption a WHERE a.sae_key = ? AND a.task = ?"
ALL_SAE_ABSORPTION = f"""
SELECT {_SAE_ABSORPTION_COLUMNS}, s.model_name, s.l0, s.d_sae
FROM sae_absorption a JOIN saes s ON s.sae_key = a.sae_key
WHERE a.task = ?
ORDER BY s.model_name, s.layer, s.d_sae, s.l0, a.sae_key
"""
# Every SAE's headline numbers on every task: one row per (SAE, task).
ALL_TASKS_SAE_ABSORPTION = f"""
SELECT {_SAE_ABSORPTION_COLUMNS}, s.model_name, s.l0, s.d_sae
FROM sae_absorption a JOIN saes s ON s.sae_key = a.sae_key
ORDER BY s.model_name, s.layer, s.d_sae, s.l0, a.sae_key, a.task <> 'first_letter', a.task
"""

# One row per letter: the SAE's latents for it, joined with the probe of the SAE's model and hook.
_SAE_LETTERS = """
SELECT l.letter, l.included, l.split_latents, l.n_split, l.split_stability, l.main_stability,
       l.main_latent, l.main_encoder_cos, l.main_precision, l.main_recall, l.main_f1, l.main_in_split,
       l.other_split_latents, l.other_absorption_fraction, l.other_full_absorption_rate,
       l.best_latent, l.best_precision, l.best_recall, l.best_f1, l.n_probe_true_positives,
       l.mean_absorption_fraction, l.absorption_fraction_low, l.absorption_fraction_high,
       l.full_absorption_rate, l.full_absorption_rate_low, l.full_absorption_rate_high, l.n_full_absorption,
       l.paper_absorption_rate, l.paper_absorption_rate_low, l.paper_absorption_rate_high,
       l.n_candidates, l.n_sampled, l.n_paper_absorption,
       p.n_train, p.n_test, p.probe_precision, p.probe_recall, p.probe_f1, p.probe_auc, p.probe_stability,
       p.fold_direction_cos, p.model_accuracy, p.model_checked,
       p.neuron, p.neuron_sign, p.neuron_precision, p.neuron_recall, p.neuron_f1,
       p.pca_component, p.pca_sign, p.pca_precision, p.pca_recall, p.pca_f1
FROM sae_letters l
LEFT JOIN letter_probes p ON p.probe_run_id = l.probe_run_id AND p.letter = l.letter
WHERE l.sae_key = ? AND l.task = ?
"""
SAE_LETTERS = _SAE_LETTERS + " ORDER BY l.letter"
SAE_LETTER = _SAE_LETTERS + " AND l.letter = ?"

# Per-letter values of every SAE (the overview heatmap).
ALL_SAE_LETTERS = """
SELECT l.sae_key, l.letter, l.included, l.mean_absorption_fraction, l.full_absorption_rate, l.n_split,
       l.split_stability, p.probe_f1
FROM sae_letters l
LEFT JOIN letter_probes p ON p.probe_run_id = l.probe_run_id AND p.letter = l.letter
WHERE l.task = ?
ORDER BY l.sae_key, l.letter
"""

LETTER_PROBES = """
SELECT letter, n_train, n_test, probe_precision, probe_recall, probe_f1, probe_auc, probe_stability,
       n_probe_true_positives, model_accuracy, model_checked,
       neuron, neuron_sign, neuron_precision, neuron_recall, neuron_f1,
       pca_component, pca_sign, pca_precision, pca_recall, pca_f1
FROM letter_probes WHERE probe_run_id = ? ORDER BY letter
"""

PROBE_RUN = """
SELECT probe_run_id, model_name, hook_name, task, config, split_mode, n_folds, n_words, n_train, n_test, n_dropped,
       prompt_template, created_at
FROM probe_runs WHERE probe_run_id = ?
"""
# Every probe run at a hook, with the SAEs whose results point at it (a hook holds several after builds
# with different absorption configs).
HOOK_PROBE_RUNS = """
SELECT r.probe_run_id, r.split_mode, r.n_folds, r.n_words, r.n_train, r.n_test, r.created_at,
       list(a.sae_key ORDER BY a.sae_key) FILTER (WHERE a.sae_key IS NOT NULL) AS sae_keys
FROM probe_runs r LEFT JOIN sae_absorption a ON a.probe_run_id = r.probe_run_id
WHERE r.model_name = ? AND r.hook_name = ? AND r.task = ?
GROUP BY ALL
ORDER BY r.created_at DESC, r.probe_run_id
"""
PROBE_RUN_COUNT = "SELECT count(*) FROM probe_runs WHERE model_name = ?"
PROBE_MODELS = "SELECT DISTINCT model_name FROM probe_runs ORDER BY model_name"

SAE_LETTER_K = """
SELECT fold, k, latents, weights, bias, precision, recall, f1
FROM sae_letter_k WHERE sae_key = ? AND task = ? AND letter = ? ORDER BY fold, k
"""
# What each fold chose for a letter and its numbers on that fold's words alone.
SAE_LETTER_FOLDS = """
SELECT fold, split_latents, main_latent, main_f1, n_probe_true_positives, mean_absorption_fraction,
       full_absorption_rate, paper_absorption_rate, n_candidates, n_sampled, other_split_latents
FROM sae_letter_folds WHERE sae_key = ? AND task = ? AND letter = ? ORDER BY fold
"""

# latent_letter_cos holds, per class (tasks.classes[class_index], 1-based) and block of COS_BLOCK latents, the
# latents' cosines in steps of 1 / COS_SCALE: element i is latent first_latent + i - 1. $1 sae_key, $2 task, $3 class.
_CLASS_INDEX = "list_position((SELECT classes FROM tasks WHERE task = $2), $3)"
LETTER_LATENT_COS = f"""
SELECT c.latent, c.decoder_cos, c.encoder_cos, l.density
FROM (SELECT sae_num, first_latent + generate_subscripts(decoder_cos, 1) - 1 AS latent,
             unnest(decoder_cos) / {COS_SCALE} AS decoder_cos, unnest(encoder_cos) / {COS_SCALE} AS encoder_cos
      FROM latent_letter_cos
      WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = $1) AND task = $2
        AND class_index = {_CLASS_INDEX}) c
LEFT JOIN latents l ON l.sae_num = c.sae_num AND l.latent = c.latent
ORDER BY c.latent
"""
# One latent's cosines with every class of a task, in the task's class order. $1 sae_key, $2 task, $3 latent.
LATENT_LETTER_COS = f"""
SELECT u.letter, c.decoder_cos[$3 - c.first_latent + 1] / {COS_SCALE} AS decoder_cos,
       c.encoder_cos[$3 - c.first_latent + 1] / {COS_SCALE} AS encoder_cos
FROM latent_letter_cos c
JOIN (SELECT unnest(classes) AS letter, generate_subscripts(classes, 1) AS i FROM tasks WHERE task = $2) u
  ON u.i = c.class_index
WHERE c.sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = $1) AND c.task = $2
  AND c.first_latent = $3 // {COS_BLOCK} * {COS_BLOCK} AND $3 - c.first_latent < len(c.decoder_cos)
ORDER BY u.i
"""

# Words of one letter that the SAE absorbed: projection rows with any absorption, and every
# ablation row (the sampled paper-metric candidates, absorbed or not).
ABSORBED_WORDS = f"""
SELECT w.metric, w.token_id, v.token AS word, w.fold, w.probe_projection,
       w.absorption_fraction, w.is_full_absorption, w.is_absorption,
       w.absorber, w.absorber_act, w.absorber_score, pw.probe_logit
FROM absorption_words w
JOIN saes s ON s.sae_num = w.sae_num
LEFT JOIN vocab v ON v.model_name = s.model_name AND v.token_id = w.token_id
LEFT JOIN probe_words pw ON pw.probe_run_id = w.probe_run_id AND pw.token_id = w.token_id
WHERE w.sae_num = {NUM} AND w.task = ? AND w.letter = ?
  AND (w.metric = 'ablation' OR w.is_full_absorption OR w.absorption_fraction > 0)
ORDER BY w.metric DESC, w.is_full_absorption DESC NULLS LAST, w.is_absorption DESC NULLS LAST,
         w.absorption_fraction DESC NULLS LAST, w.probe_projection DESC
"""

# A word as the user types it: the token with or without one leading space (" snake", "snake").
PROBE_WORDS_BY_TEXT = """
SELECT pw.probe_run_id, r.hook_name, r.task, pw.token_id, v.token, pw.letter, pw.is_test, pw.fold, pw.prefix_id, pw.probe_logit,
       pw.model_correct, pp.text AS prefix_text, r.prompt_template, r.split_mode, r.n_folds
FROM probe_words pw
JOIN probe_runs r ON r.probe_run_id = pw.probe_run_id
JOIN vocab v ON v.model_name = r.model_name AND v.token_id = pw.token_id
LEFT JOIN probe_prefixes pp ON pp.probe_run_id = pw.probe_run_id AND pp.prefix_id = pw.prefix_id
WHERE r.model_name = ? AND (v.token = ? OR v.token = ' ' || ?)
ORDER BY r.task <> 'first_letter', r.task, r.hook_name, r.created_at DESC, pw.probe_run_id, v.token
"""
VOCAB_TOKEN_IDS_BY_TEXT = """
SELECT token_id, token FROM vocab WHERE model_name = ? AND (token = ? OR token = ' ' || ?) ORDER BY token
"""
# Autocomplete: the distinct words of the task (leading space removed).
PROBE_VOCABULARY = """
SELECT DISTINCT ltrim(v.token, ' ') AS word
FROM probe_words pw JOIN probe_runs r USING (probe_run_id)
JOIN vocab v ON v.model_name = r.model_name AND v.token_id = pw.token_id
WHERE r.model_name = ?
ORDER BY word
"""

# One word across every SAE of its model: one row per SAE, task and metric (a word may belong to several tasks, a
# class in each). Projection rows are stored only for absorbed words: an SAE measured against a probe run whose
# (out-of-fold) probe gets the word right, with no projection row for it, gets one here with absorption fraction 0
# and no per-word activations (NULL split_acts). The absorber's cosine is with its class's probe (tasks.classes
# order).
TOKEN_ABSORPTION = f"""
WITH stored AS (
    SELECT s.sae_key, w.task, w.probe_run_id, w.metric, w.letter, w.fold, w.probe_projection, true AS has_acts,
           w.absorption_fraction, w.is_full_absorption, w.is_absorption, w.absorber, w.absorber_act, w.absorber_score
    FROM absorption_words w JOIN saes s ON s.sae_num = w.sae_num
    WHERE s.model_name = $1 AND w.token_id = $2
), not_absorbed AS (
    SELECT a.sae_key, a.task, pw.probe_run_id, 'projection' AS metric, pw.letter, pw.fold,
           NULL::REAL AS probe_projection, false AS has_acts, 0.0::REAL AS absorption_fraction,
           false AS is_full_absorption, NULL::BOOLEAN AS is_absorption, NULL::INTEGER AS absorber,
           NULL::REAL AS absorber_act, NULL::REAL AS absorber_score
    FROM probe_words pw JOIN probe_runs r ON r.probe_run_id = pw.probe_run_id
    JOIN sae_absorption a ON a.probe_run_id = pw.probe_run_id AND a.task = r.task
    WHERE r.model_name = $1 AND pw.token_id = $2 AND {measured_word_sql('pw')}
      AND NOT EXISTS (SELECT 1 FROM stored w WHERE w.sae_key = a.sae_key AND w.task = a.task
                                               AND w.metric = 'projection')
)
SELECT w.sae_key, w.task, w.probe_run_id, s.hook_name, s.layer, s.d_sae, s.l0, s.training_architecture,
       w.metric, w.letter, w.fold, w.probe_projection,
       CASE WHEN w.has_acts THEN {WORD_SPLIT_ACTS} END AS split_acts,
       f.split_latents,                 -- the word's fold's split latents: split_acts follow their order
       l.split_latents AS modal_split_latents, l.split_stability,
       f.main_latent, w.absorption_fraction, w.is_full_absorption, w.is_absorption,
       w.absorber, w.absorber_act, w.absorber_score,
       c.decoder_cos[w.absorber - c.first_latent + 1] / {COS_SCALE} AS absorber_cos, ld.density AS absorber_density
FROM (SELECT * FROM stored UNION ALL BY NAME SELECT * FROM not_absorbed) w
JOIN saes s ON s.sae_key = w.sae_key
JOIN sae_letters l ON l.sae_key = w.sae_key AND l.task = w.task AND l.letter = w.letter
JOIN sae_letter_folds f ON f.sae_key = w.sae_key AND f.task = w.task AND f.letter = w.letter AND f.fold = w.fold
LEFT JOIN (SELECT sae_num, task, {SPLIT_ACT_LISTS} FROM absorption_split_acts WHERE token_id = $2 GROUP BY ALL) sa
       ON sa.sae_num = s.sae_num AND sa.task = w.task
LEFT JOIN tasks t ON t.task = w.task
LEFT JOIN latent_letter_cos c ON c.sae_num = s.sae_num AND c.task = w.task
      AND c.class_index = list_position(t.classes, w.letter) AND c.first_latent = w.absorber // {COS_BLOCK} * {COS_BLOCK}
LEFT JOIN latents ld ON ld.sae_num = s.sae_num AND ld.latent = w.absorber
ORDER BY s.model_name, s.layer, s.d_sae, s.l0, w.sae_key, w.task <> 'first_letter', w.task, w.metric DESC
"""

# A latent's roles in every task (one row per task and class).
LATENT_MAIN_LETTERS = """
SELECT task, letter, main_f1 FROM sae_letters WHERE sae_key = ? AND main_latent = ?
ORDER BY task <> 'first_letter', task, letter
"""
LATENT_BEST_LETTERS = """
SELECT task, letter, best_f1 FROM sae_letters WHERE sae_key = ? AND best_latent = ?
ORDER BY task <> 'first_letter', task, letter
"""
LATENT_SPLIT_LETTERS = """
SELECT task, letter, list_position(split_latents, ?) AS split_rank, n_split
FROM sae_letters WHERE sae_key = ? AND list_contains(split_latents, ?) ORDER BY task <> 'first_letter', task, letter
"""
LATENT_ABSORBED_WORDS = f"""
SELECT w.task, w.letter, w.metric, w.token_id, v.token AS word, w.absorber_act AS act, w.absorber_score AS score,
       w.absorption_fraction, w.is_full_absorption, w.is_absorption
FROM absorption_words w
JOIN saes s ON s.sae_num = w.sae_num
LEFT JOIN vocab v ON v.model_name = s.model_name AND v.token_id = w.token_id
WHERE w.sae_num = {NUM} AND w.absorber = ? AND (w.is_full_absorption OR w.is_absorption)
ORDER BY w.task <> 'first_letter', w.task, w.letter, w.metric DESC, v.token
"""

# Examples for the token page: fully absorbed words of an SAE.
ABSORBED_EXAMPLES = f"""
SELECT DISTINCT ltrim(v.token, ' ') AS word
FROM absorption_words w
JOIN saes s ON s.sae_num = w.sae_num
JOIN vocab v ON v.model_name = s.model_name AND v.token_id = w.token_id
WHERE w.sae_num = {NUM} AND w.task = ? AND w.metric = 'projection' AND w.is_full_absorption
ORDER BY word
LIMIT ?
"""
VOCABULARY_PREFIX = """
SELECT DISTINCT ltrim(v.token, ' ') AS word
FROM probe_words pw JOIN probe_runs r USING (probe_run_id)
JOIN vocab v ON v.model_name = r.model_name AND v.token_id = pw.token_id
WHERE r.model_name = ? AND starts_with(lower(ltrim(v.token, ' ')), lower(?))
ORDER BY length(word), word
LIMIT ?
"""
SAE_HAS_ABSORPTION = "SELECT count(*) FROM sae_letters WHERE sae_key = ?"  # any task
SAE_HAS_TASK_ABSORPTION = "SELECT count(*) FROM sae_letters WHERE sae_key = ? AND task = ?"

# --- comparing SAEs ----------------------------------------------------------------------------
# Every SAE with its dashboard metrics and, when measured on the task, its headline absorption numbers (NULL
# otherwise).
COMPARE_SAES = """
SELECT s.sae_key, s.model_name, s.hook_name, s.layer, s.architecture, s.training_architecture, s.d_sae, s.l0,
       s.explained_variance, s.dead_fraction, s.n_dead, a.sae_key IS NOT NULL AS has_absorption, a.probe_run_id,
       a.n_letters,
       a.mean_absorption_fraction, a.mean_absorption_fraction_low, a.mean_absorption_fraction_high,
       a.full_absorption_rate, a.full_absorption_rate_low, a.full_absorption_rate_high,
       a.paper_absorption_rate, a.paper_absorption_rate_low, a.paper_absorption_rate_high,
       a.mean_num_split_latents, a.mean_main_precision, a.mean_main_recall, a.mean_main_f1, a.mean_probe_f1,
       a.split_mode, a.n_folds, a.fold_sd_absorption_fraction, a.n_unstable_letters,
       a.split_rule, a.other_rule, a.other_absorption_fraction, a.other_absorption_fraction_low,
       a.other_absorption_fraction_high, a.n_rule_changed_letters, a.n_main_outside_split
FROM saes s LEFT JOIN sae_absorption a ON a.sae_key = s.sae_key AND a.task = ?
ORDER BY s.model_name, s.layer, s.d_sae, s.l0, s.sae_key
"""

# A latent's best match (decoder cosine) in every other SAE at its hook, with that SAE and latent.
LATENT_MATCHES = f"""
SELECT s.sae_key AS other_sae_key, m.other_latent, m.cosine, s.layer, s.d_sae, s.l0, s.architecture,
       s.training_architecture, l.density, l.n_fired
FROM latent_matches m
JOIN saes s ON s.sae_num = m.other_sae_num
LEFT JOIN latents l ON l.sae_num = m.other_sae_num AND l.latent = m.other_latent
WHERE m.sae_num = {NUM} AND m.latent = ?
ORDER BY s.layer, s.d_sae, s.l0, s.sae_key
"""
# The roles of those matched latents in every task: main or split latent of a class, absorber of a class (top
# latent of fully absorbed or paper-absorbed words, as LATENT_ABSORBED_WORDS counts them).
LATENT_MATCH_ROLES = f"""
WITH m AS (SELECT n.sae_key, n.sae_num, x.other_latent AS latent FROM latent_matches x
           JOIN sae_numbers n ON n.sae_num = x.other_sae_num WHERE x.sae_num = {NUM} AND x.latent = ?)
SELECT m.sae_key, l.task, 'main' AS role, l.letter, NULL::BIGINT AS n_words
FROM m JOIN sae_letters l ON l.sae_key = m.sae_key AND l.main_latent = m.latent
UNION ALL
SELECT m.sae_key, l.task, 'split' AS role, l.letter, NULL::BIGINT AS n_words
FROM m JOIN sae_letters l ON l.sae_key = m.sae_key AND list_contains(l.split_latents, m.latent)
                          AND l.main_latent <> m.latent
UNION ALL
SELECT m.sae_key, w.task, 'absorber' AS role, w.letter, count(DISTINCT w.token_id) AS n_words
FROM m JOIN absorption_words w ON w.sae_num = m.sae_num AND w.absorber = m.latent
WHERE w.is_full_absorption OR w.is_absorption
GROUP BY m.sae_key, w.task, w.letter
ORDER BY sae_key, task <> 'first_letter', task, role, letter
"""

# Live text
# The tables the live page's letter readings read (older databases lack them).
LIVE_LETTER_TABLES = """
SELECT count(*) FROM information_schema.tables WHERE table_name IN ('sae_absorption', 'sae_letters', 'letter_probes')
"""
# One row per class of an SAE measured for absorption on a task (the live page: first_letter): its split and main
# latents, and the probe (of the probe run the SAE was measured against) whose unit direction the projection metric
# reads.
LIVE_LETTER_PROBES = """
SELECT l.letter, l.split_latents, l.main_latent, p.weight, p.bias
FROM sae_absorption a
JOIN sae_letters l ON l.sae_key = a.sae_key AND l.task = a.task
JOIN letter_probes p ON p.probe_run_id = a.probe_run_id AND p.letter = l.letter
WHERE a.sae_key = ? AND a.task = ?
ORDER BY l.letter
"""

# Running text ----------------------------------------------------------------------------------
# (token_latents and token_letters, at the end of contract/sql/schema.sql; a database built before them lacks them)
TABLE_EXISTS = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
# SAEs whose running text was computed (a database migrated from an older schema has the tables, empty).
RUNNING_TEXT_SAES = """
SELECT n.sae_key FROM (SELECT DISTINCT sae_num FROM token_occurrences) o JOIN sae_numbers n USING (sae_num) ORDER BY 1
"""

# Browse's token search: the latents that fire most on tokens spelled like the query, from the token index.
LATENTS_BY_RUNNING_TOKEN = f"""
WITH matches AS (SELECT token_id, token FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?)))
SELECT t.latent, m.token, o.n_occurrences, t.mean_act, t.fire_rate, l.density, l.max_act
FROM token_latents t
JOIN matches m ON m.token_id = t.token_id
JOIN token_occurrences o ON o.sae_num = t.sae_num AND o.token_id = t.token_id
JOIN latents l ON l.sae_num = t.sae_num AND l.latent = t.latent
WHERE t.sae_num = {NUM}
ORDER BY t.mean_act DESC, t.latent, m.token
LIMIT ?
"""
# Occurrences of tokens spelled like the query in the stored corpus rows (positions >= ?), first rows first.
TOKEN_OCCURRENCES_BY_TEXT = """
WITH matches AS (SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?))),
rows_with AS (
    SELECT s.seq_id, s.tokens FROM sequences s
    WHERE s.model_name = ? AND list_has_any(s.tokens, (SELECT list(token_id) FROM matches))
    ORDER BY s.seq_id LIMIT ?
),
positions AS (
    SELECT seq_id, tokens, unnest(tokens) AS token_id, generate_subscripts(tokens, 1) - 1 AS pos FROM rows_with
)
SELECT seq_id, pos, tokens FROM positions
WHERE token_id IN (SELECT token_id FROM matches) AND pos >= ?
ORDER BY seq_id, pos
LIMIT ?
"""
# A token's occurrences and its latents (highest mean activation first) in every SAE of a model where it occurs.
_TOKEN_LATENT_LISTS = """
coalesce(list(t.latent ORDER BY t.mean_act DESC, t.latent) FILTER (WHERE t.latent IS NOT NULL), []) AS latents,
coalesce(list(t.mean_act ORDER BY t.mean_act DESC, t.latent) FILTER (WHERE t.latent IS NOT NULL), []) AS mean_acts,
coalesce(list(t.fire_rate ORDER BY t.mean_act DESC, t.latent) FILTER (WHERE t.latent IS NOT NULL), []) AS fire_rates
"""
TOKEN_RUNNING_TEXT = f"""
SELECT s.sae_key, o.n_occurrences, {_TOKEN_LATENT_LISTS}
FROM token_occurrences o
JOIN saes s ON s.sae_num = o.sae_num
LEFT JOIN token_latents t ON t.sae_num = o.sae_num AND t.token_id = o.token_id
WHERE s.model_name = ? AND o.token_id = ?
GROUP BY s.sae_key, o.n_occurrences, s.layer, s.d_sae, s.l0
ORDER BY s.layer, s.d_sae, s.l0, s.sae_key
"""
# Several tokens in one SAE (the pieces of a multi-token word).
TOKENS_RUNNING_TEXT = f"""
SELECT o.token_id, o.n_occurrences, {_TOKEN_LATENT_LISTS}
FROM token_occurrences o
LEFT JOIN token_latents t ON t.sae_num = o.sae_num AND t.token_id = o.token_id
WHERE o.sae_num = {NUM} AND o.token_id IN (SELECT unnest(?::INTEGER[]))
GROUP BY o.token_id, o.n_occurrences
"""
# An alphabetic token's letter (precompute/storage/writer.ALPHABETIC_TOKENS: one optional leading space, ASCII letters)
# The token's first-letter latents in running text, per SAE with absorption results: the split latents from
# sae_letters (task bound: token_letters is the first-letter task's), each one's rate from token_latents (no row
# there: it never fires on the token).
TOKEN_LETTER_RATES = f"""
SELECT s.sae_key, v.letter, l.main_latent, t.main_fire_rate, coalesce(l.split_latents, []) AS split_latents,
       coalesce((SELECT list(coalesce(r.fire_rate, 0) ORDER BY u.i)
                 FROM (SELECT unnest(l.split_latents) AS latent, generate_subscripts(l.split_latents, 1) AS i) u
                 LEFT JOIN token_latents r ON r.sae_num = t.sae_num AND r.token_id = t.token_id AND r.latent = u.latent
                ), []) AS split_fire_rates,
       t.any_split_fire_rate
FROM token_letters t
JOIN saes s ON s.sae_num = t.sae_num
JOIN (SELECT {TOKEN_LETTER} AS letter FROM vocab WHERE model_name = $2 AND token_id = $3) v ON true
JOIN sae_letters l ON l.sae_key = s.sae_key AND l.task = $1 AND l.letter = v.letter
WHERE s.model_name = $2 AND t.token_id = $3
ORDER BY s.layer, s.d_sae, s.l0, s.sae_key
"""
# The token page's fallback tokenizer: the longest vocabulary token that starts `text`.
LONGEST_VOCAB_PREFIX = """
SELECT token_id, token FROM vocab
WHERE model_name = ? AND length(token) > 0 AND starts_with(?, token)
ORDER BY length(token) DESC, token_id
LIMIT 1
"""
# The task words closest to a typed string (Jaro-Winkler, then edit distance), case-insensitive.
NEAREST_TASK_WORDS = """
WITH words AS (
    SELECT DISTINCT ltrim(v.token, ' ') AS word
    FROM probe_words pw JOIN probe_runs r USING (probe_run_id)
    JOIN vocab v ON v.model_name = r.model_name AND v.token_id = pw.token_id
    WHERE r.model_name = ?
)
SELECT word, jaro_winkler_similarity(lower(word), lower(?)) AS similarity
FROM words
WHERE word <> ?
ORDER BY similarity DESC, levenshtein(lower(word), lower(?)), word
LIMIT ?
"""

# --- ground truth of a toy run (truth_* tables; empty unless a toy model was built) -----------------------------
HAS_TRUTH = "SELECT count(*) > 0 FROM truth_latents WHERE sae_key = ?"
TRUTH_FEATURES = """
SELECT feature, name, role, parent FROM truth_features
WHERE model_name = (SELECT model_name FROM saes WHERE sae_key = ?) ORDER BY feature
"""
# Per latent: its best-matching true feature, and the closest child with that child's parent (names and cosines).
TRUTH_LATENTS = """
SELECT t.latent, f.name AS feature, f.role, f.parent AS feature_parent, t.feature_cos,
       c.name AS child, t.child_cos, p.name AS parent, t.parent_cos
FROM truth_latents t
JOIN saes s ON s.sae_key = t.sae_key
JOIN truth_features f ON f.model_name = s.model_name AND f.feature = t.feature
LEFT JOIN truth_features c ON c.model_name = s.model_name AND c.feature = t.child
LEFT JOIN truth_features p ON p.model_name = s.model_name AND p.feature = t.parent
WHERE t.sae_key = ? ORDER BY t.latent
"""
# The projection metric's verdict against the truth, per class: over the words the metric judges (probe true
# positives with an out-of-fold verdict), flagged = a projection row exists (absorption fraction > 0 or full
# absorption: the build stores exactly those words), positive = the word truly holds a child of its class.
TRUTH_VERDICT_COUNTS = f"""
WITH judged AS (
    SELECT w.letter AS class, tw.absorbable,
           EXISTS (SELECT 1 FROM absorption_words a
                   WHERE a.sae_num = n.sae_num AND a.task = s.task AND a.metric = 'projection'
                     AND a.token_id = w.token_id) AS flagged
    FROM sae_absorption s
    JOIN saes x ON x.sae_key = s.sae_key
    JOIN sae_numbers n ON n.sae_key = s.sae_key
    JOIN probe_words w ON w.probe_run_id = s.probe_run_id
    JOIN truth_words tw ON tw.model_name = x.model_name AND tw.token_id = w.token_id
    WHERE s.sae_key = ? AND s.task = ? AND {measured_word_sql('w')}
)
SELECT class,
       count(*) FILTER (WHERE flagged AND absorbable) AS true_pos,
       count(*) FILTER (WHERE flagged AND NOT absorbable) AS false_pos,
       count(*) FILTER (WHERE NOT flagged AND absorbable) AS false_neg,
       count(*) FILTER (WHERE NOT flagged AND NOT absorbable) AS true_neg
FROM judged GROUP BY class ORDER BY class
"""

# The spelling check (/live?spell=WORD): the task word spelled so in the SAE's probe run, preferring the form with one
# leading space (the running-text form), with its prompt's parts and its fold's split and main latents, and its
# projection-metric absorber. ? order: sae_key, task, then the word (three times) or the token id.
_SPELL_PROMPT = """
SELECT w.token_id, v.token, w.letter, w.fold, p.text AS prefix, r.prompt_template,
       f.split_latents, f.main_latent, a.absorber, a.is_full_absorption, a.absorption_fraction, w.is_test,
       w.probe_logit
FROM sae_absorption s
JOIN probe_runs r ON r.probe_run_id = s.probe_run_id
JOIN probe_words w ON w.probe_run_id = r.probe_run_id
JOIN vocab v ON v.model_name = r.model_name AND v.token_id = w.token_id
JOIN probe_prefixes p ON p.probe_run_id = r.probe_run_id AND p.prefix_id = w.prefix_id
LEFT JOIN sae_letter_folds f ON f.sae_key = s.sae_key AND f.task = s.task AND f.probe_run_id = r.probe_run_id
                             AND f.letter = w.letter AND f.fold = coalesce(w.fold, 0)
LEFT JOIN absorption_words a ON a.sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = s.sae_key)
                             AND a.task = s.task AND a.probe_run_id = r.probe_run_id AND a.metric = 'projection'
                             AND a.token_id = w.token_id
WHERE s.sae_key = ? AND s.task = ?
"""
SPELL_PROMPT = _SPELL_PROMPT + """AND lower(trim(v.token)) = lower(trim(?))
ORDER BY v.token <> ' ' || trim(?), v.token <> trim(?), w.token_id LIMIT 1"""
SPELL_PROMPT_OF_TOKEN = _SPELL_PROMPT + "AND w.token_id = ?"
LATENT_DENSITIES_OF = f"""
SELECT latent, density FROM latents WHERE sae_num = {NUM} AND latent IN (SELECT unnest(?::INTEGER[]))
"""
