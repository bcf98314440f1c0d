"""Prompt sets for a task, as token ids, with the option of sharing one sampled
in-context prefix across a group of words.

Every prompt is `prefix + [word] + tail`: the prefix holds the in-context examples (and BOS where
the model uses one), the word is one token and the tail is the template after it (" has the first
letter:" for first_letter). Because attention is causal, the activation at the word depends only on the prefix and
the word, so a prefix shared by a group of words is run once and its keys/values are reused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from precompute.absorption.vocab import PromptConfig, Word, example_line

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class PromptSet:
    words: list[Word]
    labels: np.ndarray  # [n] class index into PromptConfig.classes (letters 0..25)
    is_test: np.ndarray  # [n] bool: held out from probe training
    prefixes: list[list[int]]  # distinct in-context prefixes as token ids (ending with the separator)
    prefix_index: np.ndarray  # [n] the prefix each word's prompt uses
    tail_ids: list[int]  # the template after the word
    n_dropped: int  # words whose prompt does not tokenize as prefix + [word] + tail

    def __len__(self) -> int:
        return len(self.words)

    def prompt_ids(self, i: int) -> list[int]:
        return self.prefixes[self.prefix_index[i]] + [self.words[i].token_id] + self.tail_ids

    def groups(self) -> list[tuple[int, np.ndarray]]:
        """(prefix id, word indices using it), in prefix order."""
        order = np.argsort(self.prefix_index, kind="stable")
        bounds = np.flatnonzero(np.diff(self.prefix_index[order])) + 1
        return [(int(self.prefix_index[chunk[0]]), chunk) for chunk in np.split(order, bounds) if len(chunk)]


def letter_token_ids(tokenizer, config: PromptConfig) -> list[int]:
    """The answer token for each class (" A" ... " Z" for first_letter), one token each."""
    ids = []
    for answer in config.answers:
        encoded = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ValueError(f"answer {answer!r} is not one token")
        ids.append(encoded[0])
    return ids


def sample_examples(pool: list[Word], exclude: set[int], rng: random.Random, n: int) -> list[Word]:
    examples: list[Word] = []
    while len(examples) < n:
        candidate = pool[rng.randrange(len(pool))]
        if candidate.token_id not in exclude:
            examples.append(candidate)
    return examples


def prefix_text(examples: list[Word], config: PromptConfig) -> str:
    lead = config.example_separator if config.separator_before_first_example else ""
    return lead + "".join(example_line(w, config) + config.example_separator for w in examples)


def build_prompt_set(tokenizer, train: list[Word], test: list[Word], config: PromptConfig,
                     share_prefix: bool, group_size: int, bos_id: int | None) -> PromptSet:
    """Prompts for every word. Examples come from the word's own split and never include a target of
    the same group. With share_prefix, `group_size` words share one sampled prefix; otherwise every
    word gets a fresh one (the references' behaviour)."""
    rng = random.Random(config.seed)
    tail_ids = tokenizer(config.template.split("{word}", 1)[1], add_special_tokens=False)["input_ids"]
    lead = [bos_id] if bos_id is not None else []
    words: list[Word] = []
    is_test: list[bool] = []
    prefixes: list[list[int]] = []
    prefix_index: list[int] = []
    n_dropped = 0
    for split, pool in ((False, train), (True, test)):
        if not pool:  # cross-fitting puts every word in the measured pool
            continue
        if len(pool) <= config.n_examples:
            raise ValueError(f"{len(pool)} words in a split: too few for {config.n_examples} in-context examples")
        # at most half the split shares a prefix, so the examples (never a target of the group) exist
        size = max(1, min(group_size, len(pool) // 2)) if share_prefix else 1
        for start in range(0, len(pool), size):
            group = pool[start : start + size]
            examples = sample_examples(pool, {w.token_id for w in group}, rng, config.n_examples)
            text = prefix_text(examples, config)
            ids = lead + tokenizer(text, add_special_tokens=False)["input_ids"]
            kept = [w for w in group if tokenizes_as_parts(tokenizer, text, w, ids[len(lead):], tail_ids, config)]
            n_dropped += len(group) - len(kept)
            if not kept:
                continue
            prefixes.append(ids)
            for word in kept:
                words.append(word)
                is_test.append(split)
                prefix_index.append(len(prefixes) - 1)
    labels = np.array([config.classes.index(w.letter) for w in words], dtype=np.int64)
    return PromptSet(words, labels, np.array(is_test), prefixes, np.array(prefix_index, dtype=np.int64),
                     tail_ids, n_dropped)


def tokenizes_as_parts(tokenizer, prefix: str, word: Word, prefix_ids: list[int], tail_ids: list[int],
                       config: PromptConfig) -> bool:
    """The full prompt text must tokenize to exactly prefix + [word] + tail, so the word sits at a
    known position (-1 - len(tail), i.e. -6 for the default template) and the prefix can be shared."""
    full = prefix + config.template.format(word=word.text)
    return tokenizer(full, add_special_tokens=False)["input_ids"] == prefix_ids + [word.token_id] + tail_ids
