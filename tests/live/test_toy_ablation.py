"""The spelling check's causal reading on the toy world, where the truth is known: a child word ("animalCat") carries
its parent's direction, the shipped toy SAE's parent latent stays silent on it (the planted absorption) and a
child-aligned latent carries the parent direction instead. Ablating that absorber at the word, spliced in with the
SAE's error term (live/edits.py), takes the parent's effect on the output away (its answer's margin over the other
parents collapses), while ablating the silent parent latent changes nothing: the absorber, not the parent latent, is
what the model's parent reading rests on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from live.edits import Edit, model_logits
from live.spell import margin
from precompute.toy import hierarchy as toy


@pytest.fixture(scope="module")
def world():
    from sae_lens import SAE

    model = toy.load_toy_model()
    sae = SAE.load_from_disk(str(toy.TOY_SAE_DIR), device="cpu")
    directions = toy.load_toy_weights()["feature_directions"].float()  # [n_features, d_model]
    return model, sae, directions


def parent_margin(model, sae, word_id: int, answers: list[int], correct: int, ablate: int | None) -> float:
    edits = None if ablate is None else (Edit(0, ablate, 0.0),)
    logits = model_logits(model, sae, toy.TOY_HOOK, [word_id], None, edits)[0].numpy()  # tied unembedding, at the word
    return margin(logits, answers, correct)[0]


def test_ablating_the_absorber_takes_the_parent_s_effect_away_and_the_silent_parent_latent_does_nothing(world):
    model, sae, directions = world
    index = toy.feature_index()
    answers = [model.tokenizer.convert_tokens_to_ids(p) for p in toy.PARENTS]
    decoder = torch.nn.functional.normalize(sae.W_dec.detach().float(), dim=-1)  # [d_sae, d_model]
    absorbed, restored = 0, 0
    for word in (w for w in toy.words() if w.child is not None and w.filler is None):
        parent_dir = torch.nn.functional.normalize(directions[index[word.parent]], dim=0)
        cos = decoder @ parent_dir  # [d_sae]
        parent_latent = int(cos.argmax())
        word_id = model.tokenizer.convert_tokens_to_ids(word.text)
        with torch.inference_mode():
            z = sae.encode(model.W_E[word_id][None].float())[0]  # [d_sae]: resid_pre is the embedding
        if z[parent_latent] > 0:
            continue  # not absorbed in this SAE: nothing to check
        absorbed += 1
        score = (z * cos).numpy()
        score[parent_latent] = -np.inf
        absorber = int(score.argmax())
        assert z[absorber] > 0 and cos[absorber] > 0.1, f"{word.text}: no active latent carries the parent"
        correct = toy.PARENTS.index(word.parent)
        as_is = parent_margin(model, sae, word_id, answers, correct, None)
        assert as_is > 0, f"{word.text}: the model reads its parent"
        assert parent_margin(model, sae, word_id, answers, correct, parent_latent) == pytest.approx(as_is, abs=1e-4)
        without = parent_margin(model, sae, word_id, answers, correct, absorber)
        restored += without < 0.5 * as_is
    assert absorbed >= 5, "the shipped toy SAE absorbs 9 of its 20 bare child words"
    assert restored >= 0.9 * absorbed, f"ablating the absorber took the parent away on {restored} of {absorbed} words"


def test_the_spelling_check_runs_on_a_model_without_a_final_norm(world):
    """The toy model has no final norm (nor an ln_final module): the one-row unembedding of an edit and the spelling
    check's conditions resumed from the hook give the full forward's logits there (the link crawl found
    /live?sae=toy-…&spell=… raising AttributeError once)."""
    from live import spell

    model, sae, _ = world
    assert model.cfg.normalization_type is None
    word = next(w for w in toy.words() if w.child is not None and w.filler is None)
    ids = [model.tokenizer.convert_tokens_to_ids(w) for w in (word.text, word.text)]
    full = model_logits(model, sae, toy.TOY_HOOK, ids, None, (), position=None)
    assert (model_logits(model, sae, toy.TOY_HOOK, ids, None, (), position=-1) - full[-1]).abs().max() < 1e-5
    prompt = spell.SpellPromptIds(tuple(ids), word_position=1)
    codes = spell.word_codes(model, sae, toy.TOY_HOOK, prompt)
    active = int(np.argmax(codes))
    conditions = [spell.Condition(spell.AS_IS, ()), spell.Condition("top", (active,))]
    resumed = spell.conditions_from_the_hook(model, sae, toy.TOY_HOOK, prompt, conditions)
    for condition, logits in zip(conditions, resumed):
        assert np.abs(logits - spell.condition_logits(model, sae, toy.TOY_HOOK, prompt, condition)).max() < 1e-5
