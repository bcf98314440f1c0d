"""The spelling check (`/live?spell=WORD`): the task's own prompt for a word (its probe run's in-context examples, then
the template with the word), and the model's answer there as it is and with single latents ablated at the word.

The answer is read as a margin: the logit of the word's own class answer (' S') minus the mean logit of the other
classes' answers (the other 25 letters). Ablation splices the SAE at its hook with the latent's code set to 0 at the
word's position, keeping the SAE's error term (live/edits.py), so "nothing ablated" is the model itself.

Streamlit-free; torch is imported inside the functions that run the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from live.edits import Edit, edited_codes, model_logits
from live.inference import forward_pass

AS_IS = "as is"


@dataclass(frozen=True)
class SpellPromptIds:
    ids: tuple[int, ...]  # lead (BOS where the model uses one) + prefix + word + tail, as the build tokenized it
    word_position: int  # index of the word token in ids


@dataclass(frozen=True)
class Condition:
    """One run of the prompt: `latents` ablated at the word (none: the model as it is)."""

    name: str  # "as is", "absorber", "main latent", "split latents", "control"
    latents: tuple[int, ...]


@dataclass(frozen=True)
class SpellRow:
    name: str
    latents: tuple[int, ...]
    activations: tuple[float, ...]  # each latent's code at the word (0: ablating it changes nothing)
    margin: float  # logit of the word's class answer - mean logit of the other answers, at the last token
    answer: int  # index of the class whose answer has the highest logit
    correct_rank: int  # 1 = the model's top answer among the classes is the word's own


def build_prompt(tokenizer, prefix: str, template: str, word_token_id: int, bos_id: int | None) -> SpellPromptIds:
    """The probe run's prompt for the word, tokenized piecewise as the build did (precompute/absorption/prompts.py:
    the build kept only words whose full prompt tokenizes exactly so)."""
    before, after = template.split("{word}", 1)
    lead = [] if bos_id is None else [bos_id]
    prefix_ids = lead + tokenizer(prefix + before, add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    return SpellPromptIds(tuple(prefix_ids + [word_token_id] + tail_ids), len(prefix_ids))


def resume_layer(model, hook_name: str) -> int | None:
    """Where the model's forward stops at the hook's residual and resumes from it (None: a hook inside a block)."""
    from precompute.loading.sae import resume_layer as seam

    return seam(hook_name, model.cfg.n_layers)


def resid_at_hook(model, hook_name: str, prompt: SpellPromptIds):
    """[1, n_ctx, d_model] the residual stream at the hook (the model up to it only)."""
    import torch

    tokens = torch.tensor([list(prompt.ids)], dtype=torch.long)  # [1, n_ctx]
    with forward_pass(model), torch.inference_mode():
        layer = resume_layer(model, hook_name)
        if layer is not None:
            return model(tokens, prepend_bos=False, stop_at_layer=layer)
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name], prepend_bos=False)
        return cache[hook_name]


def word_codes(model, sae: Any, hook_name: str, prompt: SpellPromptIds) -> np.ndarray:
    """[d_sae] the SAE's codes at the word (the model up to the hook)."""
    import torch

    resid = resid_at_hook(model, hook_name, prompt)[0, prompt.word_position].to(sae.dtype)  # [d_model]
    with forward_pass(model, sae), torch.inference_mode():
        return sae.encode(resid[None])[0].float().numpy()


def margin(logits: np.ndarray, answer_ids: list[int], correct: int) -> tuple[float, int, int]:
    """(margin, the top answer's class index, the correct answer's rank among the classes) from [d_vocab] logits."""
    values = logits[answer_ids]  # [n_classes]
    others = np.delete(values, correct)
    rank = 1 + int((values > values[correct]).sum())
    return float(values[correct] - others.mean()), int(np.argmax(values)), rank


def control_latent(codes: np.ndarray, exclude: set[int], densities: dict[int, float], target: float | None) -> int | None:
    """The control: a latent active at the word that is none of `exclude`, with the density closest (in log) to
    `target` (the absorber's or the main latent's); the strongest active one when no density is known."""
    active = [int(i) for i in np.flatnonzero(codes > 0) if int(i) not in exclude]
    if not active:
        return None
    if target is None or target <= 0 or not any(densities.get(i, 0) > 0 for i in active):
        return max(active, key=lambda i: (codes[i], -i))
    known = [i for i in active if densities.get(i, 0) > 0]
    return min(known, key=lambda i: (abs(math.log(densities[i]) - math.log(target)), i))


def run_conditions(model, sae: Any, hook_name: str, prompt: SpellPromptIds, answer_ids: list[int], correct: int,
                   conditions: list[Condition], codes: np.ndarray) -> tuple[SpellRow, ...]:
    """The margin at the prompt's last token for every condition (ablation at the word's position only)."""
    if resume_layer(model, hook_name) is not None:
        answer_logits = conditions_from_the_hook(model, sae, hook_name, prompt, conditions)
    else:  # a hook inside a block: each condition is its own full forward with the SAE spliced in
        answer_logits = [condition_logits(model, sae, hook_name, prompt, condition) for condition in conditions]
    rows = []
    for condition, logits in zip(conditions, answer_logits):
        value, answer, rank = margin(logits, answer_ids, correct)
        rows.append(SpellRow(condition.name, condition.latents, tuple(float(codes[i]) for i in condition.latents),
                             value, answer, rank))
    return tuple(rows)


def condition_logits(model, sae: Any, hook_name: str, prompt: SpellPromptIds, condition: Condition) -> np.ndarray:
    with forward_pass(model, sae):
        edits = None if not condition.latents else tuple(Edit(prompt.word_position, latent, 0.0)
                                                         for latent in condition.latents)
        return model_logits(model, sae, hook_name, list(prompt.ids), None, edits, position=-1).numpy()


def conditions_from_the_hook(model, sae: Any, hook_name: str, prompt: SpellPromptIds,
                             conditions: list[Condition]) -> list[np.ndarray]:
    """[d_vocab] logits at the last token per condition: the model runs to the hook once, then every condition's
    residual (the SAE's change at the word added, as live/edits.splice_hook writes it) resumes from the hook in one
    batch. The same numbers as a full forward per condition, to float rounding (tests/live/test_spell.py), in about
    half the time (bench/ablation_check.py)."""
    import torch

    from precompute.absorption.activations import final_logits

    layer = resume_layer(model, hook_name)
    resid = resid_at_hook(model, hook_name, prompt)  # [1, n_ctx, d_model]
    with forward_pass(model, sae), torch.inference_mode():
        x = resid[0, prompt.word_position].to(sae.dtype)[None]  # [1, d_model]
        codes = sae.encode(x)  # [1, d_sae]
        decoded = sae.decode(codes)
        batch = resid.repeat(len(conditions), 1, 1)  # [n_conditions, n_ctx, d_model]
        for i, condition in enumerate(conditions):
            if condition.latents:
                edits = tuple(Edit(0, latent, 0.0) for latent in condition.latents)
                delta = sae.decode(edited_codes(codes, edits)) - decoded  # [1, d_model]
                batch[i, prompt.word_position] += delta[0].to(batch.dtype)
        out = model(batch, start_at_layer=layer, stop_at_layer=model.cfg.n_layers)  # [n, n_ctx, d_model]
        logits = final_logits(model, out[:, -1]).float()  # [n_conditions, d_vocab]
    return list(logits.numpy())
