"""The pages' reads of the database: one typed function per read, each an `ExplorerDB` method cached with
st.cache_data for the database file as it is now (a file a build renamed into place is a new cache key). A page
calls `reads.sae_letter(key, letter, task)`; go-to-definition leads here, and from here to the method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import streamlit as st

from backend.database import ExplorerDB
from views import common

P = ParamSpec("P")
R = TypeVar("R")


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(path: str, identity: tuple[int, ...] | None, method: str, args: tuple, kwargs: tuple) -> Any:
    return getattr(common.db_at(path, identity), method)(*args, **dict(kwargs))


def cached_read(method: Callable[Concatenate[ExplorerDB, P], R]) -> Callable[P, R]:
    """`method` without its `self`, run on the page's database and cached per database version and arguments (the
    database is read-only, so a result never goes stale until the file is replaced)."""
    name = method.__name__

    def read(*args: P.args, **kwargs: P.kwargs) -> R:
        common.get_db()  # a database the app cannot read: its message and a stop
        return _cached(*common.db_version(), name, args, tuple(sorted(kwargs.items())))

    read.__name__ = read.__qualname__ = name
    read.__doc__ = method.__doc__
    return read


# --- SAEs, ground truth, comparison (backend/saes.py) ----------------------------------------------------
has_truth = cached_read(ExplorerDB.has_truth)
sae_comparison = cached_read(ExplorerDB.sae_comparison)
truth_features = cached_read(ExplorerDB.truth_features)
truth_latents = cached_read(ExplorerDB.truth_latents)
truth_verdict_counts = cached_read(ExplorerDB.truth_verdict_counts)

# --- latents (backend/latents.py) ------------------------------------------------------------------------
labelled_sae_keys = cached_read(ExplorerDB.labelled_sae_keys)
latent_label = cached_read(ExplorerDB.latent_label)
latent_labels_of = cached_read(ExplorerDB.latent_labels_of)
latent_roles_of = cached_read(ExplorerDB.latent_roles_of)
latents_by_label = cached_read(ExplorerDB.latents_by_label)
latent_match_roles = cached_read(ExplorerDB.latent_match_roles)
latent_matches = cached_read(ExplorerDB.latent_matches)
latent_roles = cached_read(ExplorerDB.latent_roles)

# --- absorption results (backend/absorption.py) ----------------------------------------------------------
absorbed_examples = cached_read(ExplorerDB.absorbed_examples)
absorbed_words = cached_read(ExplorerDB.absorbed_words)
all_sae_absorption = cached_read(ExplorerDB.all_sae_absorption)
all_sae_letters = cached_read(ExplorerDB.all_sae_letters)
all_tasks_sae_absorption = cached_read(ExplorerDB.all_tasks_sae_absorption)
has_absorption = cached_read(ExplorerDB.has_absorption)
has_absorption_tables = cached_read(ExplorerDB.has_absorption_tables)
hook_probe_runs = cached_read(ExplorerDB.hook_probe_runs)
latent_letter_cos = cached_read(ExplorerDB.latent_letter_cos)
letter_latent_cos = cached_read(ExplorerDB.letter_latent_cos)
probe_run = cached_read(ExplorerDB.probe_run)
probe_run_count = cached_read(ExplorerDB.probe_run_count)
sae_absorption = cached_read(ExplorerDB.sae_absorption)
sae_letter = cached_read(ExplorerDB.sae_letter)
sae_letter_folds = cached_read(ExplorerDB.sae_letter_folds)
sae_letter_k = cached_read(ExplorerDB.sae_letter_k)
sae_tasks = cached_read(ExplorerDB.sae_tasks)
tasks = cached_read(ExplorerDB.tasks)
token_absorption = cached_read(ExplorerDB.token_absorption)
spell_prompt = cached_read(ExplorerDB.spell_prompt)

# --- tokens and running text (backend/tokens.py) ---------------------------------------------------------
has_token_letters = cached_read(ExplorerDB.has_token_letters)
longest_vocab_prefix = cached_read(ExplorerDB.longest_vocab_prefix)
nearest_task_words = cached_read(ExplorerDB.nearest_task_words)
probe_words_by_text = cached_read(ExplorerDB.probe_words_by_text)
running_text_sae_keys = cached_read(ExplorerDB.running_text_sae_keys)
token_letter_rates = cached_read(ExplorerDB.token_letter_rates)
token_running_text = cached_read(ExplorerDB.token_running_text)
tokens_running_text = cached_read(ExplorerDB.tokens_running_text)
vocab_tokens_by_text = cached_read(ExplorerDB.vocab_tokens_by_text)
vocabulary_completions = cached_read(ExplorerDB.vocabulary_completions)
