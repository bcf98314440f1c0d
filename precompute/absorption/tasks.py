"""The absorption tasks: which single-token words carry which class, and how the model is asked for it.

A task is data: its classes (in label order), the answer each class's prompt line ends with (one token each), the
prompt's target line, and a labeller that gives a word's class from its text or None (not in the task). The
probe, k-sparse probing, split latents, both absorption metrics and their intervals are the same for every task
(precompute/absorption/hook.py and measure.py); only the words, labels and prompts differ.

- first_letter: the paper's task, ground truth from the token text.
- wordnet_category: a semantic feature (the post's "is an animal" absorbed into a "snake" latent): the WordNet
  lexicographer file of a noun whose senses mostly agree or whose first sense dominates, for the classes with a
  one-token answer.
- wordnet_pos: a grammatical feature: the part of speech of a word WordNet lists under exactly one.
- toy_hierarchy: the toy run's parents (precompute/toy/hierarchy.py): ground truth by construction; it labels
  only the toy model's vocabulary (Task.model_name), so other models' builds skip it.
WordNet is Debian's `wordnet-base` (WordNet 3.0, read from its data files; no network, no nltk).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

from precompute.toy import TOY_MODEL_NAME

WORDNET_DIR = Path("/usr/share/wordnet")
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# WordNet's fixed lexicographer file numbers (lexnames(5WN)) of the noun files a category task uses, and the
# one-token answer each class's prompt ends with.
NOUN_LEXNAMES = {5: "animal", 6: "artifact", 8: "body", 13: "food", 15: "location", 18: "person", 20: "plant",
                 27: "substance", 28: "time"}
CATEGORY_ANSWERS = {"animal": " animal", "artifact": " object", "body": " body", "food": " food",
                    "location": " place", "person": " person", "plant": " plant", "substance": " material",
                    "time": " time"}
POS_FILES = {"noun": "noun", "verb": "verb", "adjective": "adj", "adverb": "adv"}


@dataclass(frozen=True)
class Task:
    name: str  # stored in every absorption row and in URLs (`task=`)
    title: str
    description: str
    classes: tuple[str, ...]  # label order: label i is classes[i]
    answers: tuple[str, ...]  # the answer after each class's prompt line, one token each
    template: str  # the target line; the answer follows it
    labeller: Callable[[], Callable[[str], str | None]]  # () -> (word text without leading space -> class or None)
    min_words_per_class: int = 20  # a class with fewer labelled words is left out of the task's prompts and probe
    model_name: str | None = None  # the only model whose vocabulary the task labels (None: any model)

    def applies_to(self, model_name: str) -> bool:
        return self.model_name is None or self.model_name == model_name

    def answer(self, label: str) -> str:
        return self.answers[self.classes.index(label)]


def first_letter_of(word: str) -> str | None:
    return word[0].lower() if word else None


@cache
def wordnet_index(part: str) -> dict[str, list[int]]:
    """lemma -> its synset offsets, most frequent sense first (index.<part>), lower-case lemmas only."""
    lemmas: dict[str, list[int]] = {}
    for line in (WORDNET_DIR / f"index.{part}").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        fields = line.split()
        n_senses, n_pointers = int(fields[2]), int(fields[3])
        lemmas[fields[0]] = [int(x) for x in fields[6 + n_pointers:6 + n_pointers + n_senses]]
    return lemmas


@cache
def noun_lexfile() -> dict[int, int]:
    """noun synset offset -> its lexicographer file number (data.noun)."""
    files: dict[int, int] = {}
    for line in (WORDNET_DIR / "data.noun").read_text(encoding="latin-1").splitlines():
        if not line.startswith(" "):
            offset, lexfile = line.split(" ", 2)[:2]
            files[int(offset)] = int(lexfile)
    return files


@cache
def noun_sense_counts() -> dict[str, dict[int, tuple[int, int]]]:
    """lemma -> {sense number: (lexicographer file, times tagged in the SemCor corpus)} (cntlist.rev, nouns)."""
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    for line in (WORDNET_DIR / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        key, number, count = line.split()
        lemma, sense = key.split("%", 1)
        ss_type, lexfile = sense.split(":")[:2]
        if ss_type == "1":
            counts.setdefault(lemma, {})[int(number)] = (int(lexfile), int(count))
    return counts


def dominant_category(senses: list[int], lexfile: dict[int, int], tagged: dict[int, tuple[int, int]]) -> str | None:
    """The category of a noun's first (most frequent) sense when that sense's file holds more than half its senses,
    or when the first sense was tagged at least twice as often as all its senses in other files together ("dog":
    1 of 7 senses is an animal, but 42 of its tags are); None otherwise or when the file is not a class."""
    files = [lexfile[s] for s in senses if s in lexfile]
    if not files:
        return None
    first = files[0]
    agree = Counter(files)[first] * 2 > len(files)
    first_tags = tagged.get(1, (first, 0))[1]
    other_tags = sum(count for file, count in tagged.values() if file != first)
    if agree or (first_tags > 0 and first_tags >= 2 * other_tags):
        return NOUN_LEXNAMES.get(first)
    return None


def category_labeller() -> Callable[[str], str | None]:
    index, lexfile, tags = wordnet_index("noun"), noun_lexfile(), noun_sense_counts()
    labels = {lemma: dominant_category(senses, lexfile, tags.get(lemma, {}))
              for lemma, senses in index.items() if lemma.isalpha()}
    return lambda word: labels.get(word) if word.islower() else None


def pos_labeller() -> Callable[[str], str | None]:
    """A lower-case word listed under exactly one part of speech (a lemma; inflected forms are not listed)."""
    parts: dict[str, list[str]] = {}
    for pos, part in POS_FILES.items():
        for lemma in wordnet_index(part):
            parts.setdefault(lemma, []).append(pos)
    return lambda word: parts[word][0] if word.islower() and len(parts.get(word, ())) == 1 else None


FIRST_LETTER = Task(
    name="first_letter", title="First letter",
    description="The word's first letter, from the token text (the paper's task).",
    classes=tuple(LETTERS), answers=tuple(f" {c.upper()}" for c in LETTERS),
    template="{word} has the first letter:", labeller=lambda: first_letter_of, min_words_per_class=0)
WORDNET_CATEGORY = Task(
    name="wordnet_category", title="Semantic category (WordNet)",
    description="The WordNet 3.0 lexicographer file (noun.animal, noun.food, ...) of a lower-case noun's most frequent "
                "sense, where that file holds more than half its noun senses or that sense was tagged at least twice "
                "as often as its senses in other files.",
    classes=tuple(CATEGORY_ANSWERS), answers=tuple(CATEGORY_ANSWERS.values()),
    template="{word} is a kind of:", labeller=category_labeller)
WORDNET_POS = Task(
    name="wordnet_pos", title="Part of speech (WordNet)",
    description="The part of speech of a lower-case word WordNet 3.0 lists under exactly one of noun, verb, "
                "adjective and adverb.",
    classes=tuple(POS_FILES), answers=tuple(f" {pos}" for pos in POS_FILES),
    template="{word} is a part of speech:", labeller=pos_labeller)


def toy_labeller() -> Callable[[str], str | None]:
    from precompute.toy.hierarchy import toy_labeller as labeller

    return labeller()


# precompute.toy.hierarchy's names, spelled out here so the registry imports no torch
TOY_PARENTS = ("animal", "plant", "metal", "tool")
TOY_HIERARCHY = Task(
    name="toy_hierarchy", title="Toy hierarchy (ground truth)",
    description="The parent feature of a toy word (precompute/toy/hierarchy.py): each toy token is one known "
                "combination of a parent, at most one of its mutually exclusive children and a filler, and its "
                "class is the parent. Only the toy-hierarchy model's vocabulary is labelled.",
    classes=TOY_PARENTS, answers=tuple(f" {p}" for p in TOY_PARENTS), template="{word} is",
    labeller=toy_labeller, model_name=TOY_MODEL_NAME)
TASKS: dict[str, Task] = {task.name: task for task in (FIRST_LETTER, WORDNET_CATEGORY, WORDNET_POS, TOY_HIERARCHY)}


def tasks_for_model(names: tuple[str, ...], model_name: str, log=print) -> tuple[str, ...]:
    """The tasks of `names` that label `model_name`'s vocabulary; the others are skipped with a message (before
    any work: `build --task all` on SmolLM2 neither loads the model for the toy task nor measures it)."""
    kept = tuple(name for name in names if get_task(name).applies_to(model_name))
    for name in names:
        if name not in kept:
            log(f"skip task {name}: it labels only the {get_task(name).model_name} model's vocabulary")
    return kept


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: one of {', '.join(TASKS)}")
    return TASKS[name]
