"""SQL fragments that the writer and the reader both run: one text each, so both sides compute the same thing."""

from __future__ import annotations

# A token's lower-case first letter ('' for a token that does not start with an ASCII letter after one optional
# space): the first-letter task's class of a vocabulary row.
TOKEN_LETTER = "lower(regexp_extract(token, '^ ?([A-Za-z])', 1))"

# A word's split-latent activations: absorption_split_acts holds the non-zero ones, gathered per word by
# SPLIT_ACT_LISTS (as `sa`); WORD_SPLIT_ACTS lays them out in its fold's split-latent order (`f`: its
# sae_letter_folds row), zero where a split latent has no row.
SPLIT_ACT_LISTS = "list(split_index ORDER BY split_index) AS idx, list(act ORDER BY split_index) AS acts"
WORD_SPLIT_ACTS = ("list_transform(range(1, len(f.split_latents) + 1), "
                   "lambda i: coalesce(sa.acts[list_position(sa.idx, i)], 0)::REAL)")
