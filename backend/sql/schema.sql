-- The explorer database. Written only by `python -m precompute`; read-only for the app.
-- Bump SCHEMA_VERSION in backend/schema.py whenever this file changes.

CREATE TABLE meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per model: its vocabulary is stored once so the app never needs a tokenizer.
CREATE TABLE vocab (
    model_name VARCHAR NOT NULL,
    token_id   INTEGER NOT NULL,
    token      VARCHAR NOT NULL,
    PRIMARY KEY (model_name, token_id)
);

-- Corpus rows referenced by contexts, stored once per model and shared by every SAE.
CREATE TABLE sequences (
    model_name VARCHAR NOT NULL,
    seq_id     INTEGER NOT NULL,   -- row index in the tokenized corpus file
    tokens     INTEGER[] NOT NULL,
    PRIMARY KEY (model_name, seq_id)
);

CREATE TABLE saes (
    sae_key            VARCHAR PRIMARY KEY,  -- short URL-safe id, e.g. smollm2-l6-topk-4k-k32
    model_name         VARCHAR NOT NULL,
    hook_name          VARCHAR NOT NULL,     -- full TransformerLens hook name
    layer              INTEGER,
    architecture       VARCHAR NOT NULL,
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

-- One row per latent: firing statistics, histogram, logit lens and decoder neighbours.
CREATE TABLE latents (
    sae_key        VARCHAR NOT NULL,
    latent         INTEGER NOT NULL,
    n_fired        BIGINT NOT NULL,
    density        DOUBLE NOT NULL,      -- fraction of tokens where the latent is > 0
    max_act        REAL NOT NULL,
    mean_act       REAL NOT NULL,        -- mean over tokens where it fired
    hist_counts    INTEGER[] NOT NULL,   -- hist_bins equal bins over (0, max_act]
    top_logit_ids     INTEGER[] NOT NULL,  -- decoder direction through W_U, highest first
    top_logit_values  REAL[] NOT NULL,
    bottom_logit_ids    INTEGER[] NOT NULL, -- lowest first
    bottom_logit_values REAL[] NOT NULL,
    neighbor_ids     INTEGER[] NOT NULL,   -- nearest latents by decoder cosine
    neighbor_cosines REAL[] NOT NULL,
    PRIMARY KEY (sae_key, latent)
);

-- Example contexts: references into `sequences` (no copies of text).
CREATE TABLE contexts (
    sae_key     VARCHAR NOT NULL,
    latent      INTEGER NOT NULL,
    kind        UTINYINT NOT NULL,   -- 0 = top activations, b >= 1 = quantile bin b (1 = lowest)
    rank        USMALLINT NOT NULL,  -- order within (latent, kind)
    seq_id      INTEGER NOT NULL,
    pos         USMALLINT NOT NULL,  -- position of the highlighted token in the sequence
    act         REAL NOT NULL        -- activation at pos
);

-- The latent's sparse activations on every token of its contexts' windows (for highlighting).
-- Flat and sorted rather than per-context lists: overlapping windows are stored once and the
-- columns bit-pack well.
CREATE TABLE window_acts (
    sae_key VARCHAR NOT NULL,
    latent  INTEGER NOT NULL,
    seq_id  INTEGER NOT NULL,
    pos     USMALLINT NOT NULL,
    level   UTINYINT NOT NULL        -- round(15 * activation / max_act) clipped to 1..15 (ACTIVATION_LEVELS)
);
