-- The explorer database. Written only by `python -m precompute`; read-only for the app.
-- Bump SCHEMA_VERSION in contract/schema.py whenever this file changes.
-- PRIMARY KEYs only where a writer upserts (meta, tasks): DuckDB stores a key's index beside its table, at least a
-- block (32 KiB) even for a table of a handful of rows, and on the demo the indexes took 1.5 MB, more than many of
-- the tables (measured by `python bench/storage_report.py`, which counts indexes). The writers keep each table's
-- rows unique on the key its comment names; tests/backend/test_unique_keys.py checks every such key on the demo
-- database and on a fresh build.

CREATE TABLE meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per model: its vocabulary is stored once so the app never needs a tokenizer.
CREATE TABLE vocab (
    model_name VARCHAR NOT NULL,
    token_id   INTEGER NOT NULL,
    token      VARCHAR NOT NULL
    -- unique (model_name, token_id): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Corpus rows referenced by contexts, stored once per model and shared by every SAE.
CREATE TABLE sequences (
    model_name VARCHAR NOT NULL,
    seq_id     INTEGER NOT NULL,   -- row index in the tokenized corpus file
    tokens     INTEGER[] NOT NULL
    -- unique (model_name, seq_id): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Every SAE ever written to this database, numbered in the order it was first written; a rebuilt SAE keeps its
-- number. The large tables (a row per latent, context, word or token) name their SAE by this number: an INTEGER's
-- row-group statistics let a per-SAE lookup skip the other SAEs' rows, where a VARCHAR key's keep only its first
-- 12 bytes (Gemma Scope's keys share far longer prefixes). Queries bind the key and look the number up here.
CREATE TABLE sae_numbers (
    sae_key VARCHAR NOT NULL,
    sae_num INTEGER NOT NULL
    -- unique (sae_key), and unique (sae_num): writer.sae_number gives each new key the next number
);

CREATE TABLE saes (
    sae_key            VARCHAR NOT NULL,     -- short URL-safe id, e.g. smollm2-l6-topk-4k-k32: unique (sae_key)
    sae_num            INTEGER NOT NULL,     -- sae_numbers.sae_num
    model_name         VARCHAR NOT NULL,
    hook_name          VARCHAR NOT NULL,     -- full TransformerLens hook name
    layer              INTEGER,
    architecture       VARCHAR NOT NULL,     -- inference architecture (cfg.json)
    training_architecture VARCHAR NOT NULL,  -- e.g. batchtopk, which sae-lens saves as jumprelu
    d_in               INTEGER NOT NULL,
    d_sae              INTEGER NOT NULL,
    source             VARCHAR NOT NULL,     -- 'local' | 'release'
    path               VARCHAR,              -- local folder (source = 'local')
    release            VARCHAR,              -- sae-lens release (source = 'release')
    sae_id             VARCHAR,
    corpus             VARCHAR NOT NULL,
    n_tokens           BIGINT NOT NULL,      -- tokens the dashboards and stats were measured on
    explained_variance DOUBLE NOT NULL,
    mse                DOUBLE NOT NULL,
    l0                 DOUBLE NOT NULL,
    n_dead             INTEGER NOT NULL,     -- latents that never fired on those tokens
    dead_fraction      DOUBLE NOT NULL,
    context_left       INTEGER NOT NULL,     -- window shown around the max token
    context_right      INTEGER NOT NULL,
    hist_bins          INTEGER NOT NULL,
    created_at         TIMESTAMP NOT NULL
);

-- One row per latent: firing statistics, histogram, logit lens and decoder neighbours. The per-latent lists
-- have a fixed length (contract/schema.py: HIST_BINS, N_LOGITS, N_NEIGHBORS), so they are ARRAYs: a LIST would
-- also store an 8-byte offset per row and value (measured on the demo: the table 4.2 MB as lists, 2.9 MB as arrays).
-- No PRIMARY KEY: lookups are by (sae_num, latent) on rows sorted so, which zone maps serve without an index.
CREATE TABLE latents (
    sae_num        INTEGER NOT NULL,
    latent         INTEGER NOT NULL,
    n_fired        UINTEGER NOT NULL,    -- tokens where it fired (UINTEGER: BIGINT was stored uncompressed)
    density        REAL NOT NULL,        -- fraction of tokens where the latent is > 0 (REAL: a DOUBLE cost 0.16 MB)
    max_act        REAL NOT NULL,
    mean_act       REAL NOT NULL,        -- mean over tokens where it fired
    hist_counts    INTEGER[24] NOT NULL,   -- HIST_BINS equal bins over (0, max_act]
    top_logit_ids     INTEGER[10] NOT NULL,  -- decoder direction through W_U, highest first (N_LOGITS)
    top_logit_values  REAL[10] NOT NULL,
    bottom_logit_ids    INTEGER[10] NOT NULL, -- lowest first
    bottom_logit_values REAL[10] NOT NULL,
    neighbor_ids     INTEGER[10] NOT NULL,   -- nearest latents by decoder cosine (N_NEIGHBORS); an SAE with
    neighbor_cosines REAL[10] NOT NULL       -- fewer other latents pads with id -1, cosine NULL
    -- unique (sae_num, latent), sorted so
);

-- A short label per latent that fired on the dashboard corpus, from its activations there (precompute/pipeline/labels.py):
-- its top tokens by activation mass and their share of it, e.g. "'K…' words: Kosher, Kefir, Ketmie (41 %)". Written
-- with the dashboards (a latent without a row never fired). The explanation columns hold a later explainer's text
-- (e.g. an LLM's, as Neuronpedia shows) beside it; NULL until one writes it.
CREATE TABLE latent_labels (
    sae_num INTEGER NOT NULL,
    latent  INTEGER NOT NULL,
    label   VARCHAR NOT NULL,
    top_token_ids    INTEGER[] NOT NULL, -- up to LABEL_TOKENS tokens, most activation mass first
    top_token_shares REAL[] NOT NULL,    -- each one's share of the latent's activation mass on the corpus (3 decimals)
    explanation        VARCHAR,
    explanation_source VARCHAR           -- who wrote the explanation (an explainer model's name)
    -- unique (sae_num, latent), sorted so
);

-- Example contexts: references into `sequences` (no copies of text).
CREATE TABLE contexts (
    sae_num     INTEGER NOT NULL,
    latent      INTEGER NOT NULL,
    kind        UTINYINT NOT NULL,   -- 0 = top activations, b >= 1 = quantile bin b (1 = lowest)
    rank        USMALLINT NOT NULL,  -- order within (latent, kind)
    seq_id      INTEGER NOT NULL,
    pos         USMALLINT NOT NULL,  -- position of the highlighted token in the sequence
    act         REAL NOT NULL        -- activation at pos
    -- unique (sae_num, latent, kind, rank), sorted so
);

-- The latent's sparse activations on every token of its contexts' windows (for highlighting), each token named
-- by one of the latent's contexts whose window holds it (a build picks the first in (kind, rank) order, a migration
-- the nearest) and its offset from that context's token:
-- 10 bits instead of a corpus position's 18. Overlapping windows are stored once. A context's own token is not
-- stored where its level is the one its act gives (backend/schema.activation_levels(act, max_act)): about half
-- the rows, which the reader derives from the contexts (backend/database.window_levels).
CREATE TABLE window_acts (
    sae_num INTEGER NOT NULL,
    latent  INTEGER NOT NULL,
    context USMALLINT NOT NULL,      -- the context whose window holds the token: its 0-based place among the
                                     -- latent's contexts in (kind, rank) order (one column: a kind column cost
                                     -- 3 bits a row, mostly 0)
    rel_pos SMALLINT NOT NULL,       -- the token's position - that context's pos
    level   UTINYINT NOT NULL        -- round(15 * activation / max_act) clipped to 1..15 (ACTIVATION_LEVELS)
    -- unique (sae_num, latent, context, rel_pos), sorted so
);

-- ---------------------------------------------------------------------------------------------
-- Absorption (../shared/reference/absorption-metrics.md), for every task of precompute/absorption/tasks.py.
-- A task labels single-token words with classes: first_letter ('a'..'z', from the token text), wordnet_category
-- (WordNet lexicographer files: 'animal', 'food', ...), wordnet_pos ('noun', 'verb', ...). Every absorption table
-- names its task; the column `letter` holds the class (a letter for first_letter, the name used since v1).
CREATE TABLE tasks (
    task        VARCHAR PRIMARY KEY, -- 'first_letter' | 'wordnet_category' | 'wordnet_pos'
    title       VARCHAR NOT NULL,    -- 'First letter'
    description VARCHAR NOT NULL,    -- where the ground truth comes from
    classes     VARCHAR[] NOT NULL,  -- class names in label order; latent_letter_cos's arrays follow this order
    answers     VARCHAR[] NOT NULL,  -- the answer each class's prompt expects (' A', ' animal'), one token each
    prompt_template VARCHAR NOT NULL -- the target line, '{word}' standing for the word
);

-- Shared by the SAEs at a hook that were measured with the same config: the run's config, the
-- probe, the words and the prompts. A hook may hold several runs (builds with other configs); every
-- per-SAE row names the run it was measured against, and a run is kept while any SAE references it.
CREATE TABLE probe_runs (
    probe_run_id VARCHAR NOT NULL,    -- hash of the config, the words (and split) and the probe weights: unique (probe_run_id)
    model_name   VARCHAR NOT NULL,
    hook_name    VARCHAR NOT NULL,
    task         VARCHAR NOT NULL,
    config       VARCHAR NOT NULL,   -- JSON of AbsorptionConfig: every default of both metrics
    split_mode   VARCHAR NOT NULL,   -- 'crossfit' (every word measured out of fold) or 'holdout' (SAEBench 80/20)
    n_folds      INTEGER NOT NULL,   -- measured folds: n_folds (crossfit) or 1 (holdout)
    n_words      INTEGER NOT NULL,
    n_train      INTEGER NOT NULL,   -- holdout: probe-training words; crossfit: 0 (every word is measured)
    n_test       INTEGER NOT NULL,   -- words with an out-of-fold verdict
    n_dropped    INTEGER NOT NULL,   -- words whose prompt did not tokenize as prefix + word + tail
    prompt_template VARCHAR NOT NULL,
    seconds      VARCHAR NOT NULL,   -- JSON: time per stage of the shared work
    created_at   TIMESTAMP NOT NULL
);

-- Per letter: the probe shown on the pages (crossfit: fitted on every word, used for decoder cosines
-- only; holdout: the one probe), the out-of-fold scores of the fold probes, the model's own accuracy
-- and the single-direction baselines (best residual neuron, best PCA direction; fold 0 as test).
CREATE TABLE letter_probes (
    probe_run_id VARCHAR NOT NULL,
    model_name   VARCHAR NOT NULL,
    hook_name    VARCHAR NOT NULL,
    task         VARCHAR NOT NULL,
    letter       VARCHAR NOT NULL,   -- the class ('a'..'z' for first_letter)
    weight       REAL[] NOT NULL,    -- probe row (d_model)
    bias         REAL NOT NULL,
    n_train      INTEGER NOT NULL,   -- words of this letter the probe was fitted on (holdout) or 0 (crossfit)
    n_test       INTEGER NOT NULL,   -- words of this letter with an out-of-fold verdict
    probe_precision DOUBLE NOT NULL, -- out of fold, positive when the logit > 0
    probe_recall    DOUBLE NOT NULL,
    probe_f1        DOUBLE NOT NULL,
    probe_auc       DOUBLE,
    probe_stability DOUBLE NOT NULL, -- cosine of probes trained on two disjoint halves of fold 0's train words
    fold_direction_cos DOUBLE,       -- lowest cosine between two fold probes' directions (NULL: one fold)
    n_probe_true_positives INTEGER NOT NULL,
    model_accuracy  DOUBLE NOT NULL, -- the model's argmax over the task's answers (" A".." Z") is right
    model_checked   INTEGER NOT NULL,
    neuron          INTEGER NOT NULL,
    neuron_sign     SMALLINT NOT NULL,
    neuron_precision DOUBLE NOT NULL,
    neuron_recall    DOUBLE NOT NULL,
    neuron_f1        DOUBLE NOT NULL,
    pca_component    INTEGER NOT NULL,
    pca_sign         SMALLINT NOT NULL,
    pca_precision    DOUBLE NOT NULL,
    pca_recall       DOUBLE NOT NULL,
    pca_f1           DOUBLE NOT NULL
    -- unique (probe_run_id, letter): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- The fold probes: fold f's probe is fitted on every word outside fold f (crossfit) or on the
-- training words (holdout, fold 0 only), and measures the words of fold f.
CREATE TABLE probe_folds (
    probe_run_id VARCHAR NOT NULL,
    task     VARCHAR NOT NULL,
    fold     SMALLINT NOT NULL,
    letter   VARCHAR NOT NULL,
    weight   REAL[] NOT NULL,
    bias     REAL NOT NULL,
    n_words  INTEGER NOT NULL,       -- the fold's words of this letter
    n_probe_true_positives INTEGER NOT NULL
    -- unique (probe_run_id, fold, letter): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Every word of the task with its fold, prompt prefix and the probe's verdict. Its model, hook and task are its probe
-- run's (probe_runs): not repeated on every word.
CREATE TABLE probe_words (
    probe_run_id  VARCHAR NOT NULL,
    token_id      INTEGER NOT NULL,
    letter        VARCHAR NOT NULL,  -- the word's class
    is_test       BOOLEAN NOT NULL,  -- has an out-of-fold verdict (every word in crossfit; the 20 % in holdout)
    fold          SMALLINT,          -- the fold whose probe measured it; NULL: a holdout probe-training word
    prefix_id     INTEGER NOT NULL,  -- the in-context examples of its prompt (probe_prefixes)
    probe_logit   REAL NOT NULL,     -- its own letter's logit from its fold's probe (holdout training: in-sample)
    model_correct BOOLEAN            -- the model's own answer (NULL: not checked)
    -- unique (probe_run_id, token_id); no PRIMARY KEY: its index would outweigh the table
);

CREATE TABLE probe_prefixes (
    probe_run_id VARCHAR NOT NULL,
    model_name VARCHAR NOT NULL,
    hook_name  VARCHAR NOT NULL,
    prefix_id  INTEGER NOT NULL,
    text       VARCHAR NOT NULL
    -- unique (probe_run_id, prefix_id): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Per SAE and task: headline numbers over classes whose probe F1 > min_probe_f1, with bootstrap intervals.
CREATE TABLE sae_absorption (
    sae_key  VARCHAR NOT NULL,
    task     VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,   -- the probe run (probe_runs) every number of this SAE was measured against
    hook_name VARCHAR NOT NULL,
    n_letters INTEGER NOT NULL,      -- letters in the headline means
    mean_absorption_fraction DOUBLE, mean_absorption_fraction_low DOUBLE, mean_absorption_fraction_high DOUBLE,
    std_absorption_fraction  DOUBLE, -- sample std over letters (SAEBench's std_dev_absorption_fraction_score)
    full_absorption_rate DOUBLE, full_absorption_rate_low DOUBLE, full_absorption_rate_high DOUBLE,
    std_full_absorption  DOUBLE,
    paper_absorption_rate DOUBLE, paper_absorption_rate_low DOUBLE, paper_absorption_rate_high DOUBLE,
    std_paper_absorption  DOUBLE,
    mean_num_split_latents DOUBLE, std_num_split_latents DOUBLE,
    mean_main_precision DOUBLE, mean_main_recall DOUBLE, mean_main_f1 DOUBLE,
    mean_probe_f1 DOUBLE,
    split_mode VARCHAR NOT NULL,     -- 'crossfit' or 'holdout' (probe_runs.split_mode)
    n_folds  INTEGER NOT NULL,
    -- SD over folds of the headline number computed within each fold (NULL: one fold); the intervals
    -- above resample folds and then words, so they cover the probe and split-latent choice too
    fold_sd_absorption_fraction DOUBLE, fold_sd_full_absorption DOUBLE, fold_sd_paper_absorption DOUBLE,
    n_unstable_letters INTEGER NOT NULL, -- included letters whose split latents change between folds
    -- The split-latent rule (docs/split_rule.md): 'f1' ranks candidates by each latent's own F1, 'l1' by the L1
    -- probe's weight (SAEBench's). The numbers above use split_rule; other_* are the same numbers under other_rule
    -- (method sensitivity; NULL in a database migrated from before v13, whose split_rule is 'l1' and only that).
    split_rule VARCHAR NOT NULL,
    other_rule VARCHAR,
    other_absorption_fraction DOUBLE, other_absorption_fraction_low DOUBLE, other_absorption_fraction_high DOUBLE,
    other_full_absorption_rate DOUBLE, other_full_absorption_rate_low DOUBLE, other_full_absorption_rate_high DOUBLE,
    n_rule_changed_letters INTEGER,  -- included classes whose split latents differ between the rules in some fold
    n_main_outside_split INTEGER,    -- included classes whose main latent is not one of their split latents
    config   VARCHAR NOT NULL,       -- JSON
    seconds  VARCHAR NOT NULL,       -- JSON: time per stage of the per-SAE work
    created_at TIMESTAMP NOT NULL
    -- unique (sae_key, task); no PRIMARY KEY (see the note at the top)
);

CREATE TABLE sae_letters (
    sae_key VARCHAR NOT NULL,
    task    VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,
    letter  VARCHAR NOT NULL,
    included BOOLEAN NOT NULL,       -- probe F1 > min_probe_f1: counted in the headline means
    split_latents INTEGER[] NOT NULL,-- accepted by the tau rule (SAEBench counts all of them); the folds' most
                                     -- frequent selection (sae_letter_folds has each fold's)
    n_split INTEGER NOT NULL,
    split_stability DOUBLE NOT NULL, -- share of folds that selected exactly split_latents (1: stable)
    main_latent INTEGER NOT NULL, main_encoder_cos DOUBLE NOT NULL, -- the folds' most frequent main latent
    main_stability DOUBLE NOT NULL,  -- share of folds that chose it
    main_precision DOUBLE NOT NULL, main_recall DOUBLE NOT NULL, main_f1 DOUBLE NOT NULL, -- over every measured word
    main_in_split BOOLEAN NOT NULL,  -- main_latent is one of split_latents (if not, the projection metric may name the
                                     -- class's own main latent as the absorber of its words)
    best_latent INTEGER NOT NULL,    -- best single latent as "active" classifier (chosen on fold 0's train words)
    best_precision DOUBLE NOT NULL, best_recall DOUBLE NOT NULL, best_f1 DOUBLE NOT NULL,
    n_probe_true_positives INTEGER NOT NULL,
    mean_absorption_fraction DOUBLE, absorption_fraction_low DOUBLE, absorption_fraction_high DOUBLE,
    full_absorption_rate DOUBLE, full_absorption_rate_low DOUBLE, full_absorption_rate_high DOUBLE,
    n_full_absorption INTEGER NOT NULL,
    paper_absorption_rate DOUBLE, paper_absorption_rate_low DOUBLE, paper_absorption_rate_high DOUBLE,
    n_candidates INTEGER NOT NULL,   -- paper metric: probe right, k-sparse probe wrong, split latents silent
    n_sampled INTEGER NOT NULL,
    n_paper_absorption INTEGER NOT NULL,
    -- under the other split-latent rule (sae_absorption.other_rule), where it chose other split latents in some fold
    -- (NULL: both rules chose the same in every fold, so the numbers above hold for both)
    other_split_latents INTEGER[],   -- its folds' most frequent selection
    other_absorption_fraction DOUBLE, other_full_absorption_rate DOUBLE
    -- unique (sae_key, task, letter): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Per SAE, letter and fold: what that fold's probe, L1 probe and k-sparse probing chose, and the
-- numbers on that fold's words alone (the spread the headline intervals cover).
CREATE TABLE sae_letter_folds (
    sae_key VARCHAR NOT NULL,
    task    VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,
    letter  VARCHAR NOT NULL,
    fold    SMALLINT NOT NULL,
    split_latents INTEGER[] NOT NULL,
    main_latent INTEGER NOT NULL,
    main_f1 DOUBLE NOT NULL,         -- on the fold's words
    n_probe_true_positives INTEGER NOT NULL,
    mean_absorption_fraction DOUBLE,
    full_absorption_rate DOUBLE,
    paper_absorption_rate DOUBLE,    -- NULL without the ablation metric
    n_candidates INTEGER NOT NULL,
    n_sampled INTEGER NOT NULL,
    other_split_latents INTEGER[]    -- the other split-latent rule's choice on this fold (NULL: the same as split_latents)
    -- unique (sae_key, task, letter, fold): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

CREATE TABLE sae_letter_k (
    sae_key VARCHAR NOT NULL,
    task    VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,
    letter  VARCHAR NOT NULL,
    fold    SMALLINT NOT NULL,
    k       INTEGER NOT NULL,
    latents INTEGER[] NOT NULL,      -- top-k by the L1 probe's positive weight
    weights REAL[] NOT NULL,         -- LogisticRegression(class_weight="balanced") on those latents
    bias    REAL NOT NULL,
    precision DOUBLE NOT NULL,       -- precision, recall and F1 to 4 decimals (K_STAT_DECIMALS)
    recall    DOUBLE NOT NULL,
    f1        DOUBLE NOT NULL
    -- unique (sae_key, task, letter, fold, k): the writers keep it so; no PRIMARY KEY (see the note at the top)
);

-- Every latent's cosines with the task's classes' (shown) probe directions, in steps of 0.005 (backend/schema.COS_SCALE:
-- finer than the cosines' own spread across fold probes, bench/cosine_precision.py): a row per class and block of
-- COS_BLOCK latents, element i of its lists latent first_latent + i - 1. A row per latent (a list over the classes)
-- paid 8 bytes of list offsets per list and latent: measured on the demo, 3.34 MB against 2.20 MB this way.
CREATE TABLE latent_letter_cos (
    sae_num INTEGER NOT NULL,
    task    VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,
    class_index USMALLINT NOT NULL,    -- 1-based: the class tasks.classes[class_index] (first_letter: chr(96 + i))
    first_latent INTEGER NOT NULL,     -- a multiple of COS_BLOCK
    decoder_cos SMALLINT[] NOT NULL,   -- COS_SCALE x cosine of each latent's decoder row with the class's direction
    encoder_cos SMALLINT[] NOT NULL    -- COS_SCALE x cosine of its encoder column
    -- unique (sae_num, task, class_index, first_latent), sorted so
);

-- Per word (probe true positives among measured words, each in its fold): metric = 'projection' (SAEBench; only
-- words with absorption fraction > 0 or full absorption: a true positive without a row was not absorbed, read
-- from probe_words) or 'ablation' (the paper's integrated-gradients metric, every sampled candidate).
CREATE TABLE absorption_words (
    sae_num  INTEGER NOT NULL,
    task     VARCHAR NOT NULL,
    probe_run_id VARCHAR NOT NULL,
    metric   VARCHAR NOT NULL,
    letter   VARCHAR NOT NULL,       -- the word's class
    token_id INTEGER NOT NULL,
    fold     SMALLINT NOT NULL,      -- measured against this fold's probe and split latents (sae_letter_folds)
    probe_projection REAL NOT NULL,  -- P = activation . unit direction of its fold's probe
    -- its fold's split latents' activations on it: absorption_split_acts
    absorption_fraction REAL,        -- projection rows
    is_full_absorption BOOLEAN,      -- projection rows
    is_absorption BOOLEAN,           -- ablation rows
    -- The absorbing latent: of the word's top latents by projection (highest first) or attribution (most
    -- negative first), the first that is not one of its fold's split latents; NULL when all of them are. Only
    -- the absorber is kept: the pages show no other, and three lists per row (DuckDB stores a list's offsets
    -- uncompressed, 8 bytes a row each) were three quarters of the table.
    absorber INTEGER,
    absorber_act REAL,               -- its activation on the word
    absorber_score REAL              -- projection z * cos, or attribution
    -- unique (sae_num, task, metric, token_id); no PRIMARY KEY: its index would outweigh the table
);

-- The non-zero activations of an absorption_words word's split latents (its fold's, sae_letter_folds.split_latents),
-- a row each: most are zero (every fully absorbed word's are), and a list per word cost 8 bytes a row in offsets
-- alone. Both metrics' rows of a word share these.
CREATE TABLE absorption_split_acts (
    sae_num  INTEGER NOT NULL,
    task     VARCHAR NOT NULL,
    token_id INTEGER NOT NULL,
    split_index UTINYINT NOT NULL,   -- 1-based position in the fold's split latents
    act      REAL NOT NULL           -- > 0: a split latent without a row is silent on the word
    -- unique (sae_num, task, token_id, split_index), sorted so
);

-- Cross-SAE matching: for each latent, its best match by decoder cosine in every other SAE at the same
-- model and hook (feature splitting across widths; is an absorber here a clean letter latent there?).
CREATE TABLE latent_matches (
    sae_num       INTEGER NOT NULL,
    latent        INTEGER NOT NULL,
    other_sae_num INTEGER NOT NULL,
    other_latent  INTEGER NOT NULL,
    cosine        REAL NOT NULL
    -- unique (sae_num, latent, other_sae_num); no PRIMARY KEY: its index would outweigh the table
);

-- Each token in running text: the dashboard corpus at the positions the dashboards encode. Flat, sorted tables
-- rather than per-token lists: measured on the demo build, DuckDB stores these lists at about twice the size.
-- One row per SAE and vocabulary token that occurs.
CREATE TABLE token_occurrences (
    sae_num       INTEGER NOT NULL,
    token_id      INTEGER NOT NULL,
    n_occurrences INTEGER NOT NULL
    -- unique (sae_num, token_id), sorted so; no PRIMARY KEY: its index would outweigh the table
);

-- Per occurring token, its top DashboardConfig.n_token_latents latents by mean activation over its occurrences,
-- plus, for an alphabetic token of an SAE with absorption results, every split latent of its first letter
-- (sae_letters) that fires on it at least once: a split latent without a row never fires on the token.
CREATE TABLE token_latents (
    sae_num   INTEGER NOT NULL,
    token_id  INTEGER NOT NULL,
    latent    INTEGER NOT NULL,
    mean_act  REAL NOT NULL,        -- mean over every occurrence (0 where the latent is silent)
    fire_rate REAL NOT NULL         -- share of the token's occurrences where the latent is > 0
    -- unique (sae_num, token_id, latent); sorted by (sae_num, token_id, mean_act DESC, latent)
);

-- The first-letter task in running text: for each alphabetic token (ASCII letters, one optional leading space)
-- that occurs, how often its first letter's latents fire on it. Only for SAEs with absorption results, written
-- with their dashboards; the split latents are sae_letters.split_latents, their rates in token_latents.
CREATE TABLE token_letters (
    sae_num        INTEGER NOT NULL,
    token_id       INTEGER NOT NULL, -- its letter: the token's first ASCII letter, lower-cased (its vocab text)
    main_fire_rate REAL NOT NULL,    -- share of the token's occurrences where the letter's main latent
                                     -- (sae_letters.main_latent) is > 0
    any_split_fire_rate REAL NOT NULL -- share of occurrences where at least one split latent is > 0
    -- unique (sae_num, token_id), sorted so; no PRIMARY KEY: its index would outweigh the table
);

-- ---------------------------------------------------------------------------------------------
-- Absorption suspects without a probe (precompute/pipeline/probe_free.py): per latent, scores from the SAE's weights and
-- stored density alone, higher = more suspect. Every SAE the build could load; deleted with its dashboards
-- (density changes with them) and recomputed by the next build or migration.
CREATE TABLE latent_scores (
    sae_num       INTEGER NOT NULL,
    latent        INTEGER NOT NULL,
    enc_dec_score REAL NOT NULL,     -- 1 - cosine(encoder column, decoder row), 0..2, 4 decimals
    parent_score  REAL NOT NULL,     -- largest decoder cosine with a strictly denser latent, clipped at 0
    parent_latent INTEGER            -- that denser latent; NULL: no latent is denser
    -- unique (sae_num, latent), sorted so; no PRIMARY KEY: its index would outweigh the table
);

-- Per SAE with absorption results: how well each score's ranking of its alive latents (n_fired > 0) recovers the
-- probe-based absorbers. labels = 'full': the absorber (absorption_words.absorber) of >= min_words fully absorbed
-- words, projection metric; 'paper': of at least one word under the ablation metric. score = 'density' is the
-- baseline (density rank). Intervals: 95 % bootstrap over latents. Statistics are NULL (n_resamples = 0) when
-- fewer than 5 latents are absorbers.
CREATE TABLE score_validation (
    sae_key     VARCHAR NOT NULL,
    task        VARCHAR NOT NULL,    -- whose absorbers are the labels
    score       VARCHAR NOT NULL,    -- 'enc_dec' | 'parent' | 'density'
    labels      VARCHAR NOT NULL,    -- 'full' | 'paper'
    min_words   INTEGER NOT NULL,
    top_share   DOUBLE NOT NULL,     -- precision and recall among this share of the alive latents, best first
    n_latents   INTEGER NOT NULL,    -- alive latents ranked
    n_absorbers INTEGER NOT NULL,    -- of them, absorbers
    n_top       INTEGER NOT NULL,    -- latents in the top share
    base_rate   DOUBLE NOT NULL,     -- n_absorbers / n_latents: a random ranking's precision
    n_resamples INTEGER NOT NULL,
    auc DOUBLE, auc_low DOUBLE, auc_high DOUBLE,
    precision DOUBLE, precision_low DOUBLE, precision_high DOUBLE,
    recall DOUBLE, recall_low DOUBLE, recall_high DOUBLE
    -- unique (sae_key, task, score, labels); no PRIMARY KEY (see the note at the top)
);

-- ---------------------------------------------------------------------------------------------
-- Ground truth of a toy run (precompute/toy/hierarchy.py): a model whose residual stream is a known world of
-- parent, child and filler features, so what the metrics call absorption can be checked. Only a toy model's
-- build writes these rows; every other database has them empty.
CREATE TABLE truth_features (
    model_name VARCHAR NOT NULL,
    feature    INTEGER NOT NULL,     -- row of the toy's feature dictionary
    name       VARCHAR NOT NULL,     -- 'animal', 'cat', 'big'
    role       VARCHAR NOT NULL,     -- 'parent' | 'child' | 'filler'
    parent     VARCHAR              -- the class it belongs to (a child's parent, a parent itself); NULL: filler
    -- unique (model_name, feature); no PRIMARY KEY (see the note at the top)
);

-- Per toy word token: the feature combination it is (its residual is exactly their directions' sum).
CREATE TABLE truth_words (
    model_name VARCHAR NOT NULL,
    token_id   INTEGER NOT NULL,
    parent     VARCHAR,              -- its class (NULL: a filler alone)
    child      VARCHAR,              -- at most one child of that parent
    filler     VARCHAR,
    absorbable BOOLEAN NOT NULL     -- a child is present: the parent may be absorbed into the child's latent
    -- unique (model_name, token_id); no PRIMARY KEY (see the note at the top)
);

-- Per latent of an SAE on a toy model: which true feature its decoder row is, by cosine with the unit feature
-- directions. An absorbing latent is a child latent whose decoder also carries its parent's direction.
CREATE TABLE truth_latents (
    sae_key     VARCHAR NOT NULL,
    latent      INTEGER NOT NULL,
    feature     INTEGER NOT NULL,    -- best-matching feature (truth_features.feature)
    feature_cos REAL NOT NULL,
    child       INTEGER,             -- the closest child feature (NULL: the toy has none)
    child_cos   REAL,
    parent      INTEGER,             -- that child's parent
    parent_cos  REAL                -- cos(decoder, parent direction): the parent it swallowed, when large
    -- unique (sae_key, latent); no PRIMARY KEY (see the note at the top)
);
