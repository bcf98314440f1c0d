"""Vocabulary, split and prompts on the embedded model's real tokenizer."""

from __future__ import annotations

import random

import pytest

from precompute.absorption.vocab import PromptConfig, alphabetic_vocabulary, icl_prompt, split_words, word_position
from precompute.loading.model import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def vocabulary(tokenizer):
    return alphabetic_vocabulary(tokenizer)


def test_vocabulary_is_alphabetic_with_and_without_space(vocabulary):
    assert len(vocabulary) > 20_000
    texts = {w.text for w in vocabulary}
    assert " snake" in texts and " short" in texts
    assert all(w.stripped.isascii() and w.stripped.isalpha() for w in vocabulary)
    assert {w.letter for w in vocabulary} == set("abcdefghijklmnopqrstuvwxyz")


def test_split_is_seeded_disjoint_and_80_20(vocabulary):
    config = PromptConfig()
    train, test = split_words(vocabulary, config)
    assert split_words(vocabulary, config) == (train, test)
    assert not {w.token_id for w in train} & {w.token_id for w in test}
    assert len(test) / len(vocabulary) == pytest.approx(0.2, abs=0.001)


def test_prompt_has_ten_examples_and_word_at_minus_six(tokenizer, vocabulary):
    config = PromptConfig()
    train, test = split_words(vocabulary, config)
    rng = random.Random(0)
    n_checked = 0
    for target in [w for w in test if w.text.startswith(" ")][:50]:
        prompt = icl_prompt(target, train, rng, config)
        assert prompt.count(" has the first letter:") == 11 and prompt.startswith("\n")
        assert prompt.endswith(f"{target.text} has the first letter:")
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert word_position(tokenizer, ids, target, config) == len(ids) - 6
        n_checked += 1
    assert n_checked == 50
