"""live/spell.py: the spelling check's prompt (tokenized piecewise as the build did), its margin, its control latent,
and its runs: nothing ablated is the model itself, and ablating a latent silent on the word changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from live import spell
from live.edits import model_logits
from tests import helpers


class CharTokenizer:
    """One token per character (id = code point): piecewise and whole tokenization agree, as the build requires."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


def test_the_prompt_is_lead_prefix_word_and_tail_with_the_word_position():
    prompt = spell.build_prompt(CharTokenizer(), "ab\n", "{word} is:", 999, bos_id=1)
    assert prompt.ids == (1, ord("a"), ord("b"), ord("\n"), 999, *map(ord, " is:"))
    assert prompt.word_position == 4 and prompt.ids[prompt.word_position] == 999
    assert spell.build_prompt(CharTokenizer(), "x", "{word}:", 7, bos_id=None).ids == (ord("x"), 7, ord(":"))


def test_margin_is_the_right_answer_against_the_mean_of_the_others():
    logits = np.zeros(10)
    logits[[2, 5, 7]] = [1.0, 4.0, 3.0]  # answers at ids 2, 5, 7; the right one (index 2, id 7) is second
    value, top, rank = spell.margin(logits, [2, 5, 7], correct=2)
    assert value == pytest.approx(3.0 - (1.0 + 4.0) / 2) and top == 1 and rank == 2


def test_the_control_is_an_active_latent_of_the_nearest_density_never_an_ablated_one():
    codes = np.array([0.0, 2.0, 1.0, 3.0, 0.5])
    densities = {1: 0.02, 2: 0.011, 3: 0.5, 4: 0.0101}
    assert spell.control_latent(codes, {4}, densities, target=0.01) == 2  # 4 is excluded, 0 is silent
    assert spell.control_latent(codes, {1, 2, 3, 4}, densities, target=0.01) is None
    assert spell.control_latent(codes, set(), {}, target=None) == 3  # no density known: the strongest


@pytest.fixture(scope="module")
def model_and_sae(tmp_path_factory):
    from sae_lens import SAE

    folder = helpers.planted_sae_folder(tmp_path_factory.mktemp("spell"))
    return helpers.tiny_model(), SAE.load_from_disk(str(folder), device="cpu")


def test_nothing_ablated_is_the_model_and_a_silent_latent_changes_nothing(model_and_sae):
    model, sae = model_and_sae
    hook = sae.cfg.metadata.hook_name
    # the word last: the tiny model's hook is its last residual, so only the word's own position reaches the answer
    prompt = spell.SpellPromptIds((5, 8, 9, 6, helpers.PLANTED_TOKEN), word_position=4)
    codes = spell.word_codes(model, sae, hook, prompt)
    assert codes[helpers.PLANTED_LATENT] > 0 and codes[helpers.DEAD_LATENT] == 0
    answers, correct = [5, 6, 8, 9], 1
    rows = spell.run_conditions(model, sae, hook, prompt, answers, correct, [
        spell.Condition(spell.AS_IS, ()), spell.Condition("silent", (helpers.DEAD_LATENT,)),
        spell.Condition("planted", (helpers.PLANTED_LATENT,))], codes)
    with torch.inference_mode():
        own = model(torch.tensor([list(prompt.ids)]), prepend_bos=False)[0, -1].numpy()
    assert rows[0].margin == pytest.approx(spell.margin(own, answers, correct)[0], abs=1e-5)
    assert rows[1].margin == pytest.approx(rows[0].margin, abs=1e-5) and rows[1].activations == (0.0,)
    ablated = model_logits(model, sae, hook, list(prompt.ids), None, ()).numpy()  # the empty splice: the model
    assert np.abs(ablated[-1] - own).max() < 1e-4
    assert rows[2].activations[0] == pytest.approx(float(codes[helpers.PLANTED_LATENT]))
    assert abs(rows[2].margin - rows[0].margin) > 1e-6, "the planted latent writes at the word, so its ablation moves it"


@pytest.mark.parametrize("hook", [helpers.EARLY_HOOK, helpers.HOOK])
def test_conditions_resumed_from_the_hook_match_a_full_forward_each(tmp_path, hook):
    """run_conditions runs the model to the hook once and resumes every condition from there in one batch; each
    condition's logits equal a full forward with the SAE spliced in (live/edits.py)."""
    from sae_lens import SAE

    model = helpers.tiny_model()
    sae = SAE.load_from_disk(str(helpers.planted_sae_folder(tmp_path, hook=hook)), device="cpu")
    prompt = spell.SpellPromptIds((5, 8, 9, 6, helpers.PLANTED_TOKEN), word_position=4)
    assert spell.word_codes(model, sae, hook, prompt)[helpers.PLANTED_LATENT] > 0
    conditions = [spell.Condition(spell.AS_IS, ()), spell.Condition("planted", (helpers.PLANTED_LATENT,)),
                  spell.Condition("two", (helpers.PLANTED_LATENT, helpers.DEAD_LATENT))]
    assert spell.resume_layer(model, hook) == int(hook.split(".")[1]) + 1
    resumed = spell.conditions_from_the_hook(model, sae, hook, prompt, conditions)
    for condition, logits in zip(conditions, resumed):
        full = spell.condition_logits(model, sae, hook, prompt, condition)
        assert np.abs(logits - full).max() < 1e-5, condition.name
    assert np.abs(resumed[1] - resumed[0]).max() > 1e-4, "the planted latent's ablation changes the answer"
    assert spell.resume_layer(model, "blocks.0.hook_mlp_out") is None  # inside a block: a full forward each
