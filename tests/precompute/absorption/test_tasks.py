"""The task registry: WordNet ground truth on words whose answer is known, one-token answers on the embedded
tokenizer, and configs that cannot ask one task's prompt with another's classes."""

from __future__ import annotations

from functools import cache

import pytest

from precompute.absorption.config import AbsorptionConfig, config_for_task
from precompute.absorption.tasks import TASKS, WORDNET_CATEGORY, WORDNET_DIR, WORDNET_POS, get_task
from precompute.absorption.vocab import task_vocabulary

# CI installs wordnet-base (.ci/run); a developer machine without it skips these
needs_wordnet = pytest.mark.skipif(not (WORDNET_DIR / "index.noun").exists(), reason="Debian wordnet-base is not installed")


@cache
def labeller(name: str):
    return get_task(name).labeller()  # parses WordNet's files once per test session


@cache
def embedded_tokenizer():
    return load_tokenizer()


def load_tokenizer(name: str | None = None):
    from precompute.loading.model import load_tokenizer as load

    return load() if name is None else load(name)


@needs_wordnet
@pytest.mark.parametrize("word, category", [
    ("snake", "animal"), ("dog", "animal"),  # dog: 1 of 7 senses an animal, but its first sense dominates the tags
    ("teacher", "person"), ("apple", "food"), ("house", "artifact"), ("oak", "plant"), ("arm", "body"),
    ("Dog", None),  # capitalised: a name as often as a noun
    ("quickly", None),  # not a noun
])
def test_semantic_categories_come_from_wordnet(word, category):
    assert labeller(WORDNET_CATEGORY.name)(word) == category


@needs_wordnet
@pytest.mark.parametrize("word, pos", [("quickly", "adverb"), ("beautiful", "adjective"), ("teacher", "noun"),
                                       ("elapse", "verb"), ("run", None), ("fast", None)])  # run, fast: several
def test_part_of_speech_only_for_words_wordnet_lists_under_one(word, pos):
    assert labeller(WORDNET_POS.name)(word) == pos


@needs_wordnet
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_answers_with_one_token_and_labels_enough_words_per_class(name):
    from precompute.absorption.prompts import letter_token_ids

    model_name = get_task(name).model_name  # a task bound to a model (the toy's) labels only its vocabulary
    tokenizer = embedded_tokenizer() if model_name is None else load_tokenizer(model_name)
    config = config_for_task(AbsorptionConfig(), name)
    assert len(set(letter_token_ids(tokenizer, config.prompts))) == len(get_task(name).classes)
    words = task_vocabulary(tokenizer, get_task(name))
    per_class = {label: sum(w.letter == label for w in words) for label in get_task(name).classes}
    assert min(per_class.values()) >= max(get_task(name).min_words_per_class, 20), per_class


def test_a_config_asks_its_own_task_s_classes():
    config = config_for_task(AbsorptionConfig(), "wordnet_pos")
    assert config.task == "wordnet_pos" and config.n_classes == 4
    assert config.prompts.template == "{word} is a part of speech:" and config.prompts.answers[1] == " verb"
    with pytest.raises(ValueError, match="config_for_task"):
        AbsorptionConfig(task="wordnet_pos")  # first-letter prompts with the part-of-speech task
    with pytest.raises(ValueError, match="unknown task"):
        config_for_task(AbsorptionConfig(), "colour")
