"""Absorption results, per task: tasks, per-SAE and per-class results, probe runs, absorbed words (ExplorerDB's reads on this subject; backend/database.py composes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from backend import queries as q
from backend.connection import Reader
from backend.verdicts import NOT_ABSORBED, projection_verdict
from contract.rows import plain_row
from contract.schema import (
    DEFAULT_TASK,
)
from contract.vocabulary import is_measured_word


class AbsorptionReads(Reader):
    """Absorption results, per task: tasks, per-SAE and per-class results, probe runs, absorbed words."""

    def letter_probe_rows(self, sae_key: str, task: str) -> list[tuple]:
        """(class, split latents, main latent, probe weight, probe bias) per class of the SAE measured on `task` (the
        live page's projection metric); [] for a database without absorption tables. Only columns every schema
        since those tables has."""
        if self._rows(q.LIVE_LETTER_TABLES)[0][0] < 3:
            return []
        return self._rows(q.LIVE_LETTER_PROBES, [sae_key, task])

    def has_absorption_tables(self) -> bool:
        """False for a database written before the absorption tables (and their tasks) existed."""
        return self._rows(q.ABSORPTION_TABLES)[0][0] == 12

    def tasks(self) -> list[TaskInfo]:
        """The tasks of this database, first_letter first ([] without absorption tables)."""
        if not self.has_absorption_tables():
            return []
        return [TaskInfo(task, title, description, tuple(classes), tuple(answers), template, int(n_saes))
                for task, title, description, classes, answers, template, n_saes in self._rows(q.TASKS)]

    def task(self, name: str) -> TaskInfo | None:
        return next((task for task in self.tasks() if task.task == name), None)

    def sae_tasks(self, sae_key: str) -> list[str]:
        """The tasks this SAE has absorption results for, first_letter first."""
        return [row[0] for row in self._rows(q.SAE_TASKS, [sae_key])] if self.has_absorption_tables() else []

    def has_absorption(self, sae_key: str, task: str | None = None) -> bool:
        """Whether the SAE has absorption results: on `task`, or on any task when None."""
        if not self.has_absorption_tables():
            return False
        if task is None:
            return self._rows(q.SAE_HAS_ABSORPTION, [sae_key])[0][0] > 0
        return self._rows(q.SAE_HAS_TASK_ABSORPTION, [sae_key, task])[0][0] > 0

    def sae_absorption(self, sae_key: str, task: str = DEFAULT_TASK) -> dict | None:
        """The SAE's headline numbers on the task (sae_absorption row), or None when it was not measured."""
        frame = self._frame(q.SAE_ABSORPTION, [sae_key, task])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def all_sae_absorption(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per SAE measured on the task."""
        return self._frame(q.ALL_SAE_ABSORPTION, [task])

    def all_tasks_sae_absorption(self) -> pd.DataFrame:
        """One row per SAE and task it was measured on."""
        return self._frame(q.ALL_TASKS_SAE_ABSORPTION)

    def sae_letters(self, sae_key: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per class: split/main/best latents, absorption rates and the class's probe."""
        return self._frame(q.SAE_LETTERS, [sae_key, task])

    def sae_letter(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> dict | None:
        frame = self._frame(q.SAE_LETTER, [sae_key, task, letter])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def all_sae_letters(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.ALL_SAE_LETTERS, [task])

    def letter_probes(self, probe_run_id: str) -> pd.DataFrame:
        return self._frame(q.LETTER_PROBES, [probe_run_id])

    def probe_run(self, probe_run_id: str) -> dict | None:
        frame = self._frame(q.PROBE_RUN, [probe_run_id])
        return None if frame.empty else plain_row(frame.iloc[0].to_dict())

    def hook_probe_runs(self, model_name: str, hook_name: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Every probe run of the task at a hook, newest first, with the SAEs measured against each."""
        return self._frame(q.HOOK_PROBE_RUNS, [model_name, hook_name, task])

    def probe_run_count(self, model_name: str) -> int:
        return self._rows(q.PROBE_RUN_COUNT, [model_name])[0][0]

    def probe_models(self) -> list[str]:
        return [row[0] for row in self._rows(q.PROBE_MODELS)]

    def sae_letter_k(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.SAE_LETTER_K, [sae_key, task, letter])

    def sae_letter_folds(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        return self._frame(q.SAE_LETTER_FOLDS, [sae_key, task, letter])

    def letter_latent_cos(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Every latent's decoder and encoder cosine with the class's probe direction, and its density."""
        return self._frame(q.LETTER_LATENT_COS, [sae_key, task, letter])

    def latent_letter_cos(self, sae_key: str, latent: int, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One latent's cosines with the probe directions of the task's classes (letter, decoder_cos, encoder_cos),
        in the task's class order."""
        return self._frame(q.LATENT_LETTER_COS, [sae_key, task, latent])

    def absorbed_words(self, sae_key: str, letter: str, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """Projection rows with any absorption and every ablation row of the class, with the word's text."""
        return self._frame(q.ABSORBED_WORDS, [sae_key, task, letter])

    def absorbed_examples(self, sae_key: str, limit: int = 12, task: str = DEFAULT_TASK) -> list[str]:
        return [row[0] for row in self._rows(q.ABSORBED_EXAMPLES, [sae_key, task, limit])]

    def spell_prompt(self, sae_key: str, task: str, word: str) -> SpellPrompt | None:
        """The task word spelled `word` (case and surrounding spaces ignored; the form with one leading space first)
        in the SAE's probe run, with what its prompt is built from; None when the run has no such word."""
        return self._spell_prompt(self._rows(q.SPELL_PROMPT, [sae_key, task, word, word, word]))

    def spell_prompt_of_token(self, sae_key: str, task: str, token_id: int) -> SpellPrompt | None:
        """The same for one task word token."""
        return self._spell_prompt(self._rows(q.SPELL_PROMPT_OF_TOKEN, [sae_key, task, int(token_id)]))

    @staticmethod
    def _spell_prompt(rows: list[tuple]) -> SpellPrompt | None:
        if not rows:
            return None
        token_id, token, name, fold, prefix, template, split, main, found, is_full, fraction, is_test, logit = rows[0]
        if is_full is not None:
            verdict = projection_verdict(fraction, is_full)
        else:  # no absorption row: a measured word was not absorbed; an unmeasured one has no verdict
            verdict = NOT_ABSORBED if is_measured_word(bool(is_test), float(logit)) else None
        return SpellPrompt(int(token_id), token, name, None if fold is None else int(fold), prefix, template,
                           tuple(int(x) for x in split or ()), None if main is None else int(main),
                           None if found is None else int(found), verdict)

    def latent_densities(self, sae_key: str, latents: list[int]) -> dict[int, float]:
        return {int(latent): float(density) for latent, density in
                self._rows(q.LATENT_DENSITIES_OF, [sae_key, [int(x) for x in latents]])}

    def token_absorption(self, model_name: str, token_id: int) -> pd.DataFrame:
        """One word across every SAE of the model: one row per SAE, task and metric."""
        return self._frame(q.TOKEN_ABSORPTION, [model_name, token_id])


@dataclass(frozen=True)
class SpellPrompt:
    """One task word's prompt in an SAE's probe run (prefix + template with the word), and what the SAE measured."""

    token_id: int
    token: str  # the word token as the vocabulary spells it (one leading space, usually)
    class_name: str  # its class (first_letter: 'a'..'z')
    fold: int | None  # the fold that measured it (cross-fitted runs); its split and main latents are that fold's
    prefix: str  # the in-context examples before it (probe_prefixes.text)
    template: str  # the target line, '{word}' where the word goes (the probe run's prompt_template)
    split_latents: tuple[int, ...]
    main_latent: int | None
    absorber: int | None  # the projection metric's absorber, where it recorded one
    verdict: str | None  # the projection metric's verdict (backend/verdicts.py); None: not measured (probe missed it)


@dataclass(frozen=True)
class TaskInfo:
    """One absorption task of the database (the `tasks` table): its classes in label order."""

    task: str
    title: str
    description: str
    classes: tuple[str, ...]
    answers: tuple[str, ...]
    prompt_template: str
    n_saes: int = 0  # SAEs with results on it

    @property
    def is_letters(self) -> bool:
        """The first-letter task: classes are single letters (shown upper-case, matched case-insensitively)."""
        return self.task == DEFAULT_TASK

    def class_label(self, value: str) -> str:
        """How a class is shown: a letter upper-case, any other class as stored."""
        return value.upper() if self.is_letters else value

    @property
    def class_noun(self) -> str:
        return "letter" if self.is_letters else "class"

    @property
    def class_plural(self) -> str:
        return "letters" if self.is_letters else "classes"


def absorber(record: Mapping[str, Any]) -> tuple[int, float, float] | None:
    """The word's absorbing latent with its activation and score, from an absorption_words row (the build
    stored the first of its top latents that is not one of its fold's split latents); None when it has none."""
    latent = record.get("absorber")
    if latent is None or pd.isna(latent):
        return None
    return int(latent), float(record["absorber_act"]), float(record["absorber_score"])
