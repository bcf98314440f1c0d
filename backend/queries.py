"""Every query the explorer runs, as named constants. Values are always bound parameters (`?`)."""

META = "SELECT key, value FROM meta"
TABLE_NAMES = "SELECT table_name FROM information_schema.tables"

LIST_SAES = """
SELECT sae_key, model_name, hook_name, layer, architecture, d_in, d_sae, source, path, release, sae_id,
       corpus, n_tokens, explained_variance, mse, l0, n_dead, dead_fraction,
       context_left, context_right, hist_bins, created_at
FROM saes ORDER BY model_name, layer, d_sae, l0, sae_key
"""
GET_SAE = """
SELECT sae_key, model_name, hook_name, layer, architecture, d_in, d_sae, source, path, release, sae_id,
       corpus, n_tokens, explained_variance, mse, l0, n_dead, dead_fraction,
       context_left, context_right, hist_bins, created_at
FROM saes WHERE sae_key = ?
"""

GET_LATENT = """
SELECT latent, n_fired, density, max_act, mean_act, hist_counts,
       top_logit_ids, top_logit_values, bottom_logit_ids, bottom_logit_values,
       neighbor_ids, neighbor_cosines
FROM latents WHERE sae_key = ? AND latent = ?
"""

LATENT_CONTEXTS = """
SELECT c.kind, c.rank, c.seq_id, c.pos, c.act, s.tokens
FROM contexts c
JOIN sequences s ON s.model_name = ? AND s.seq_id = c.seq_id
WHERE c.sae_key = ? AND c.latent = ?
ORDER BY c.kind, c.rank
"""
LATENT_WINDOW_ACTS = """
SELECT seq_id, pos, level FROM window_acts WHERE sae_key = ? AND latent = ?
"""

TOKEN_STRINGS = """
SELECT token_id, token FROM vocab WHERE model_name = ? AND token_id IN (SELECT unnest(?::INTEGER[]))
"""

TOKEN_IDS_MATCHING = """
SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?))
"""

LIVE_LATENT_AT = """
SELECT latent FROM latents WHERE sae_key = ? AND n_fired > 0 ORDER BY latent LIMIT 1 OFFSET ?
"""
COUNT_LIVE = "SELECT count(*) FROM latents WHERE sae_key = ? AND n_fired > 0"

# Browse: one statement per sort order keeps the SQL static (no string-built ORDER BY).
_BROWSE_BASE = """
SELECT latent, density, max_act, mean_act, n_fired
FROM latents
WHERE sae_key = ? AND density >= ? AND density <= ?
"""
BROWSE_LATENTS = {
    "density_desc": _BROWSE_BASE + " ORDER BY density DESC, latent LIMIT ? OFFSET ?",
    "density_asc": _BROWSE_BASE + " ORDER BY density ASC, latent LIMIT ? OFFSET ?",
    "max_act_desc": _BROWSE_BASE + " ORDER BY max_act DESC, latent LIMIT ? OFFSET ?",
    "latent": _BROWSE_BASE + " ORDER BY latent LIMIT ? OFFSET ?",
}
COUNT_BROWSE = "SELECT count(*) FROM latents WHERE sae_key = ? AND density >= ? AND density <= ?"

# Latents whose top contexts peak on a token spelled like the query.
LATENTS_BY_CONTEXT_TOKEN = """
WITH matches AS (SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?)))
SELECT c.latent, count(*) AS hits, max(c.act) AS best_act, any_value(l.density) AS density,
       any_value(l.max_act) AS max_act
FROM contexts c
JOIN sequences s ON s.model_name = ? AND s.seq_id = c.seq_id
JOIN latents l ON l.sae_key = c.sae_key AND l.latent = c.latent
WHERE c.sae_key = ? AND c.kind = 0 AND s.tokens[c.pos + 1] IN (SELECT token_id FROM matches)
GROUP BY c.latent
ORDER BY hits DESC, best_act DESC
LIMIT ?
"""

# Latents whose decoder direction promotes a token spelled like the query (top logits).
LATENTS_BY_LOGIT_TOKEN = """
WITH matches AS (SELECT token_id FROM vocab WHERE model_name = ? AND lower(trim(token)) = lower(trim(?))),
ranked AS (
    SELECT l.latent, l.density, l.max_act, u.token_id, u.idx AS logit_rank, l.top_logit_values[u.idx] AS logit
    FROM latents l,
         LATERAL (SELECT unnest(l.top_logit_ids) AS token_id, generate_subscripts(l.top_logit_ids, 1) AS idx) u
    WHERE l.sae_key = ?
)
SELECT latent, min(logit_rank) AS logit_rank, max(logit) AS logit, any_value(density) AS density,
       any_value(max_act) AS max_act
FROM ranked WHERE token_id IN (SELECT token_id FROM matches)
GROUP BY latent
ORDER BY logit DESC
LIMIT ?
"""
