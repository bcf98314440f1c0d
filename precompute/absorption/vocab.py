"""Task inputs: the alphabetic vocabulary labelled by a task (precompute/absorption/tasks.py), the seeded word
split and ICL prompts."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from precompute.absorption.tasks import FIRST_LETTER, Task

ALPHABETIC = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class PromptConfig:
    template: str = FIRST_LETTER.template  # the target line; the answer follows it
    classes: tuple[str, ...] = FIRST_LETTER.classes  # the task's classes, in label order
    answers: tuple[str, ...] = FIRST_LETTER.answers  # each class's answer (" A" .. " Z"), one token each
    n_examples: int = 10  # in-context examples before the target line
    example_separator: str = "\n"
    separator_before_first_example: bool = True  # as SAEBench does
    test_fraction: float = 0.2  # words held out from probe training; absorption is measured on these
    seed: int = 42


@dataclass(frozen=True)
class Word:
    token_id: int
    text: str  # the token as decoded, possibly with one leading space
    letter: str  # the label: its class under the task (first_letter: the lower-case first letter)

    @property
    def stripped(self) -> str:
        return self.text[1:] if self.text.startswith(" ") else self.text


def prompt_config_for(task: Task, base: PromptConfig = PromptConfig()) -> PromptConfig:
    """`base` (examples, split, seed) asking for `task`'s classes."""
    from dataclasses import replace

    return replace(base, template=task.template, classes=task.classes, answers=task.answers)


def answer_for(label: str, config: PromptConfig) -> str:
    return config.answers[config.classes.index(label)]


def task_vocabulary(tokenizer, task: Task) -> list[Word]:
    """The alphabetic tokens the task labels, each with its class; classes with fewer than the task's minimum of
    words are left out (the probe could not learn them)."""
    from collections import Counter

    label_of = task.labeller()
    labelled = [Word(w.token_id, w.text, label) for w in alphabetic_vocabulary(tokenizer)
                if (label := label_of(w.stripped)) in task.classes]
    counts = Counter(w.letter for w in labelled)
    return [w for w in labelled if counts[w.letter] >= task.min_words_per_class]


def alphabetic_vocabulary(tokenizer) -> list[Word]:
    """Every token that, after removing one optional leading space, is only ASCII letters."""
    words = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        core = text[1:] if text.startswith(" ") else text
        if ALPHABETIC.fullmatch(core):
            words.append(Word(token_id=token_id, text=text, letter=core[0].lower()))
    return words


def split_words(words: list[Word], config: PromptConfig) -> tuple[list[Word], list[Word]]:
    """Seeded split into (probe-train, probe-test) words."""
    shuffled = list(words)
    random.Random(config.seed).shuffle(shuffled)
    n_test = round(len(shuffled) * config.test_fraction)
    return shuffled[n_test:], shuffled[:n_test]


def example_line(word: Word, config: PromptConfig) -> str:
    return config.template.format(word=word.text) + answer_for(word.letter, config)


def icl_prompt(target: Word, pool: list[Word], rng: random.Random, config: PromptConfig) -> str:
    """n_examples answered lines from `pool` (never the target), then the unanswered target line."""
    examples: list[Word] = []
    while len(examples) < config.n_examples:
        candidate = pool[rng.randrange(len(pool))]
        if candidate.token_id != target.token_id:
            examples.append(candidate)
    lines = [example_line(w, config) for w in examples] + [config.template.format(word=target.text)]
    prefix = config.example_separator if config.separator_before_first_example else ""
    return prefix + config.example_separator.join(lines)


def word_position(tokenizer, prompt_ids: list[int], target: Word, config: PromptConfig) -> int:
    """Position of the target word's token, computed from the tokenization of the template's tail
    (for "{word} has the first letter:" it is -6 with most tokenizers) and checked."""
    tail = config.template.split("{word}", 1)[1]
    n_tail = len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    position = len(prompt_ids) - n_tail - 1
    if prompt_ids[position] != target.token_id:
        raise ValueError(f"word {target.text!r} is not a single token at position {position - len(prompt_ids)} of its prompt")
    return position
