"""Tiny builders for tests: a random HookedTransformer whose residual stream is exactly its token
embedding, and an SAE with a planted latent that fires on one known token."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.absorption.prompts import LETTERS
from precompute.absorption.tables import rounded_absorber
from precompute.storage.writer import sae_number

D_MODEL = 16
D_VOCAB = 60
N_CTX = 32
PLANTED_TOKEN = 7
PLANTED_LATENT = 3
DEAD_LATENT = 5  # never fires (encoder reads nothing, negative bias)
PLANTED_DIRECTION = 0  # residual dimension that only the planted token writes to
HOOK = "blocks.1.hook_resid_post"



def stored_absorber(top: list[int], acts: list[float], scores: list[float], split: list[int]) -> dict:
    """An absorption_words row's absorber columns for a word with these top latents, as the build stores them."""
    absorber, act, score = rounded_absorber(np.array(top), np.array(acts), np.array(scores), split)
    return {"absorber": absorber, "absorber_act": act, "absorber_score": score}

def tiny_model(seed: int = 0) -> HookedTransformer:
    """2-layer model with zeroed attention/MLP outputs, so resid_post == embed + pos_embed."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=D_MODEL, n_ctx=N_CTX, d_head=4, n_heads=4, d_mlp=32,
        d_vocab=D_VOCAB, act_fn="relu", normalization_type="LN", seed=seed, device="cpu",
    )
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
        model.W_E[:, PLANTED_DIRECTION] = 0.0
        model.W_E[PLANTED_TOKEN, PLANTED_DIRECTION] = 10.0
        model.W_pos[:, PLANTED_DIRECTION] = 0.0
    return model


def planted_sae_folder(root: Path, d_sae: int = 8, seed: int = 0, *, name: str = "planted-sae",
                       hook: str = HOOK, planted_latent: int = PLANTED_LATENT, aligned_decoder: bool = False,
                       training_architecture: str | None = None) -> Path:
    """A standard (ReLU) sae-lens SAE saved in its folder format; latent `planted_latent` reads only
    the planted direction (fires with activation 5.0 on PLANTED_TOKEN, never elsewhere).
    aligned_decoder: its decoder row is the planted direction itself, so SAEs built with it share
    exactly one direction (their planted latents match each other with cosine 1)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=d_sae, dtype="float32", device="cpu")
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = "tiny"
    if training_architecture:
        cfg.metadata.training_architecture = training_architecture
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_MODEL, d_sae) * 0.3)
        sae.W_enc[PLANTED_DIRECTION, :] = 0.0
        sae.b_enc.fill_(-0.2)
        sae.W_enc[:, planted_latent] = 0.0
        sae.W_enc[PLANTED_DIRECTION, planted_latent] = 1.0
        sae.b_enc[planted_latent] = -5.0
        sae.W_enc[:, DEAD_LATENT] = 0.0
        sae.b_enc[DEAD_LATENT] = -1.0
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, D_MODEL), dim=-1))
        if aligned_decoder:
            sae.W_dec[planted_latent] = 0.0
            sae.W_dec[planted_latent, PLANTED_DIRECTION] = 1.0
        sae.b_dec.zero_()
    folder = root / name
    sae.save_model(str(folder))
    return folder


def random_corpus(path: Path, n_rows: int, seq_len: int = N_CTX, planted_rate: float = 0.05, seed: int = 0) -> np.ndarray:
    """Rows of random tokens where PLANTED_TOKEN appears with a known rate; written as corpus Parquet."""
    rng = np.random.default_rng(seed)
    others = np.array([t for t in range(D_VOCAB) if t != PLANTED_TOKEN])
    rows = rng.choice(others, size=(n_rows, seq_len))
    planted = rng.random((n_rows, seq_len)) < planted_rate
    rows[planted] = PLANTED_TOKEN
    rows = rows.astype(np.int32)
    pq.write_table(pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))}), path)
    return rows


class FakeTokenizer:
    """Decodes token i as 't<i>' so vocab rows are predictable."""

    def decode(self, ids: list[int]) -> str:
        return "".join(f" t{i}" for i in ids)


def build_tiny_database(root: Path, n_rows: int = 64, keys: tuple[str, ...] = ("planted", "second")) -> Path:
    """A complete explorer database from the tiny model and the planted SAE."""
    from precompute.loading.sae import SAESpec
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, run_job

    corpus = root / "corpus.parquet"
    random_corpus(corpus, n_rows)
    folder = planted_sae_folder(root)
    db_path = root / "explorer.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, n_rows), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=20, context_left=4, context_right=2), absorption=None)
    run_job([SAESpec(key=key, path=folder) for key in keys], config, model=tiny_model(), tokenizer=FakeTokenizer(),
            log=lambda *_: None)
    return db_path


# --- a small sweep: several SAEs of the tiny model, with synthetic absorption results ---------------
EARLY_HOOK = "blocks.0.hook_resid_post"  # resid_post of block 0 is also embed + pos_embed


@dataclass(frozen=True)
class SweepSAE:
    key: str
    hook: str
    d_sae: int
    planted_latent: int  # the latent on the planted direction (matches across SAEs at a hook, cosine 1)
    training_architecture: str
    seed: int


SWEEP = (
    SweepSAE("w8", HOOK, 8, 3, "standard", 1),
    SweepSAE("w16", HOOK, 16, 11, "topk", 2),
    SweepSAE("w32", HOOK, 32, 20, "batchtopk", 3),  # no absorption rows: dashboard metrics only
    SweepSAE("early-w8", EARLY_HOOK, 8, 3, "standard", 4),  # alone at its hook
)
SWEEP_WORD_TOKEN = 7  # " t7": a held-out test word of letter t at both hooks
SWEEP_TRAIN_TOKEN = 8  # " t8": a probe-training word
SWEEP_LETTERS = {"s": 0.85, "t": 0.9, "x": 0.4}  # letter -> probe F1 (x is excluded: F1 <= 0.6)

# Headline numbers per SAE: (value, low, high) for the three rates, then split latents, main P, R.
SWEEP_ABSORPTION = {
    "w8": dict(frac=(0.10, 0.05, 0.15), full=(0.04, 0.02, 0.06), paper=(0.02, 0.01, 0.03), split=1.5, p=0.30, r=0.90),
    "w16": dict(frac=(0.20, 0.15, 0.26), full=(0.08, 0.06, 0.11), paper=(0.03, 0.02, 0.05), split=2.0, p=0.35, r=0.80),
    "early-w8": dict(frac=(0.05, 0.02, 0.08), full=(0.01, 0.00, 0.02), paper=(0.00, 0.00, 0.01), split=1.0,
                     p=0.25, r=0.95),
}
# Per SAE whose SAEBench-rule split latents differ from the guarded rule's (first letter): that rule's headline
# (value, low, high) and, per class it changed, (its split latents, mean absorption fraction). The others: the same.
SWEEP_OTHER_RULE = {"w16": dict(frac=(0.32, 0.27, 0.37), letters={"s": ([1], 0.40)})}
# Per SAE and letter: (main latent, split latents, mean absorption fraction).
SWEEP_SAE_LETTERS = {
    "w8": {"s": (4, [4, 3], 0.08), "t": (1, [1, 2], 0.12), "x": (6, [6], 0.70)},
    "w16": {"s": (0, [0, 1], 0.18), "t": (11, [11], 0.22), "x": (2, [2], 0.50)},
    "early-w8": {"s": (4, [4], 0.04), "t": (1, [1], 0.06), "x": (6, [6], 0.30)},
}
# w8's planted latent 3 is thus a split latent of S (not its main latent) and absorbs T on the test word.
# The test word per SAE: (absorption fraction, full absorption, top latents by projection).
# w8: fully absorbed by its planted latent; w16: its planted latent is the letter's main latent and
# carries it (no absorption); early-w8: partly absorbed by its planted latent.
SWEEP_WORD = {"w8": (0.9, True, [3, 1]), "w16": (0.0, False, [11, 0]), "early-w8": (0.3, False, [3, 1])}

# A second task (schema v10: tasks as data), measured for w8 and w16 only (early-w8 and w32: not on it). Its `tasks`
# row lists three classes in this (non-alphabetical) order; artifact has no measurements (no sae_letters rows), so a
# class's cosines are found by its position in tasks.classes, not by its name.
SWEEP_TASK = "wordnet_category"
SWEEP_TASK_CLASSES = ("food", "animal", "artifact")
SWEEP_CLASSES = {"animal": 0.8, "food": 0.7}  # class -> probe F1 (both included)
SWEEP_TASK_ABSORPTION = {
    "w8": dict(frac=(0.31, 0.27, 0.36), full=(0.14, 0.10, 0.18), paper=(0.07, 0.05, 0.09), split=1.0, p=0.41, r=0.61),
    "w16": dict(frac=(0.43, 0.38, 0.47), full=(0.19, 0.15, 0.23), paper=(0.09, 0.06, 0.12), split=1.5, p=0.52, r=0.57),
}
# Per SAE and class: (main latent, split latents, mean absorption fraction).
SWEEP_SAE_CLASSES = {
    "w8": {"animal": (5, [5], 0.37), "food": (2, [2, 7], 0.25)},
    "w16": {"animal": (9, [9, 11], 0.46), "food": (13, [13], 0.40)},
}
# The test word (SWEEP_WORD_TOKEN) is an animal: w8 absorbed it fully into latent 6; w16's planted latent 11 is one
# of its animal split latents and carries it (not absorbed: no projection row, read from probe_words).
SWEEP_TASK_WORD_CLASS = {SWEEP_WORD_TOKEN: "animal", SWEEP_TRAIN_TOKEN: "food"}
SWEEP_TASK_WORD = {"w8": (0.8, True, [6, 5])}


def sweep_tasks() -> list[dict]:
    """The `tasks` rows of the sweep: first_letter as registered, and SWEEP_TASK on SWEEP_TASK_CLASSES."""
    from precompute.absorption.tasks import TASKS

    rows = []
    for name, classes in (("first_letter", None), (SWEEP_TASK, SWEEP_TASK_CLASSES)):
        task = TASKS[name]
        classes = classes or task.classes
        rows.append(dict(task=name, title=task.title, description=task.description, classes=list(classes),
                         answers=[task.answer(c) for c in classes], prompt_template=task.template))
    return rows


def sweep_class_cos(latent: int, index: int) -> float:
    """A latent's (synthetic) decoder cosine with SWEEP_TASK's class of this (0-based) index: 0.01 .. 0.19."""
    return round(0.01 + 0.02 * ((3 * latent + index) % 10), 2)


def _insert(con, table: str, rows: list[dict]) -> None:
    """Rows as dicts; column names come from this file, every value is a bound parameter."""
    has_task = table_has_task(con, table)  # asked once per table, not per row
    rows = [with_task(has_task, numbered(con, table, row)) for row in rows]
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    con.executemany(sql, [[row[c] for c in columns] for row in rows])


def table_has_task(con, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = 'task'",
                       [table]).fetchall()[0][0] > 0


def with_task(has_task: bool, row: dict) -> dict:
    """A fake row of an absorption table is a first-letter result unless it names its task."""
    return {**row, "task": "first_letter"} if has_task and "task" not in row else row


def sweep_probe_run_id(hook: str, variant: str = "", task: str = "first_letter") -> str:
    return f"run-{hook.split('.')[1]}{variant}" + ("" if task == "first_letter" else f"-{task}")


# The second probe run ("b", second_run=...) is cross-fitted over two folds, and in it letter s of SAE w16 gets
# other split latents in fold 1 than in fold 0 (an unstable selection); the main runs are SAEBench's holdout.
SWEEP_FOLDS_B = 2
SWEEP_UNSTABLE = ("w16", "s")


def _probe_rows(hook: str, run_id: str, folds: int = 1, task: str = "first_letter") -> dict[str, list[dict]]:
    rows = _probe_rows_of_task(hook, run_id, folds, task)
    return {table: [{**row, "task": task} if table not in ("probe_prefixes", "probe_words") else row for row in table_rows]
            for table, table_rows in rows.items()}  # a word's task is its probe run's


def _probe_rows_of_task(hook: str, run_id: str, folds: int, task: str) -> dict[str, list[dict]]:
    now = datetime(2025, 1, 1)
    crossfit = folds > 1
    first_letter = task == "first_letter"
    classes = SWEEP_LETTERS if first_letter else SWEEP_CLASSES
    word_class = {SWEEP_WORD_TOKEN: "t", SWEEP_TRAIN_TOKEN: "t"} if first_letter else SWEEP_TASK_WORD_CLASS
    template = "{word} has the first letter:" if first_letter else "{word} is a kind of:"
    probe_runs = [dict(probe_run_id=run_id, model_name="tiny", hook_name=hook, config="{}",
                       split_mode="crossfit" if crossfit else "holdout", n_folds=folds, n_words=2,
                       n_train=0 if crossfit else 1, n_test=2 if crossfit else 1, n_dropped=0,
                       prompt_template=template, seconds="{}", created_at=now)]
    letter_probes = [dict(probe_run_id=run_id, model_name="tiny", hook_name=hook, letter=letter, weight=[0.0] * D_MODEL, bias=0.0,
                          n_train=10, n_test=5, probe_precision=f1, probe_recall=f1, probe_f1=f1, probe_auc=0.9,
                          probe_stability=0.9, fold_direction_cos=0.95 if crossfit else None,
                          n_probe_true_positives=4, model_accuracy=0.8, model_checked=5,
                          neuron=0, neuron_sign=1, neuron_precision=0.1, neuron_recall=0.1, neuron_f1=0.1,
                          pca_component=0, pca_sign=1, pca_precision=0.1, pca_recall=0.1, pca_f1=0.1)
                     for letter, f1 in classes.items()]
    probe_folds = [dict(probe_run_id=run_id, fold=fold, letter=letter, weight=[0.0] * D_MODEL, bias=0.0, n_words=5,
                        n_probe_true_positives=2) for fold in range(folds) for letter in classes]
    probe_words = [dict(probe_run_id=run_id, token_id=token, letter=word_class[token],
                        is_test=is_test or crossfit, fold=0 if is_test else (1 if crossfit else None), prefix_id=0,
                        probe_logit=2.5, model_correct=True)
                   for token, is_test in ((SWEEP_WORD_TOKEN, True), (SWEEP_TRAIN_TOKEN, False))]
    prefixes = [dict(probe_run_id=run_id, model_name="tiny", hook_name=hook, prefix_id=0, text="cat has the first letter: C\n")]
    return {"probe_runs": probe_runs, "letter_probes": letter_probes, "probe_folds": probe_folds,
            "probe_words": probe_words, "probe_prefixes": prefixes}


def _absorption_rows(key: str, hook: str, run_id: str, folds: int = 1, task: str = "first_letter") -> dict[str, list[dict]]:
    rows = _absorption_rows_without_run(key, hook, folds, task)
    split_acts = rows.pop("absorption_split_acts")  # named by SAE, task and word: no probe run
    return {**{table: [{**row, "probe_run_id": run_id, "task": task} for row in table_rows]
               for table, table_rows in rows.items()},
            "absorption_split_acts": [{**row, "task": task} for row in split_acts]}


def fold_split(key: str, letter: str, fold: int, split: list[int]) -> list[int]:
    """A fold's split latents: the letter's, except fold 1 of SWEEP_UNSTABLE (its first latent only)."""
    return split[:1] if (key, letter) == SWEEP_UNSTABLE and fold == 1 else split


def _absorption_rows_without_run(key: str, hook: str, folds: int = 1, task: str = "first_letter") -> dict[str, list[dict]]:
    first_letter = task == "first_letter"
    numbers = (SWEEP_ABSORPTION if first_letter else SWEEP_TASK_ABSORPTION)[key]
    sae_classes = (SWEEP_SAE_LETTERS if first_letter else SWEEP_SAE_CLASSES)[key]
    probe_f1 = SWEEP_LETTERS if first_letter else SWEEP_CLASSES
    now = datetime(2025, 1, 1)
    unstable = [letter for letter, (_, split, _) in sae_classes.items()
                if any(fold_split(key, letter, f, split) != split for f in range(folds))]
    summary = dict(sae_key=key, hook_name=hook, n_letters=2, config="{}", seconds="{}", created_at=now,
                   split_mode="crossfit" if folds > 1 else "holdout", n_folds=folds,
                   fold_sd_absorption_fraction=0.02 if folds > 1 else None,
                   fold_sd_full_absorption=0.01 if folds > 1 else None,
                   fold_sd_paper_absorption=0.01 if folds > 1 else None,
                   n_unstable_letters=len([u for u in unstable if probe_f1[u] > 0.6]),
                   mean_num_split_latents=numbers["split"], std_num_split_latents=0.5,
                   mean_main_precision=numbers["p"], mean_main_recall=numbers["r"], mean_main_f1=0.5,
                   mean_probe_f1=0.875, std_absorption_fraction=0.1, std_full_absorption=0.1, std_paper_absorption=0.1,
                   split_rule="guarded", other_rule="l1", n_rule_changed_letters=0,
                   n_main_outside_split=len([c for c, (main, split, _) in sae_classes.items()
                                             if main not in split and probe_f1[c] > 0.6]))
    for name, column in (("frac", "mean_absorption_fraction"), ("full", "full_absorption_rate"),
                         ("paper", "paper_absorption_rate")):
        summary.update({column: numbers[name][0], f"{column}_low": numbers[name][1],
                        f"{column}_high": numbers[name][2]})
    # the other split-latent rule: the same split latents (the same numbers) unless SWEEP_OTHER_RULE says otherwise
    for column, other in (("mean_absorption_fraction", "other_absorption_fraction"),
                          ("full_absorption_rate", "other_full_absorption_rate")):
        summary.update({other: summary[column], f"{other}_low": summary[f"{column}_low"],
                        f"{other}_high": summary[f"{column}_high"]})
    other_rule = SWEEP_OTHER_RULE.get(key) if first_letter else None
    if other_rule:
        value, low, high = other_rule["frac"]
        summary.update(other_absorption_fraction=value, other_absorption_fraction_low=low,
                       other_absorption_fraction_high=high, n_rule_changed_letters=len(other_rule["letters"]))
    changed = other_rule["letters"] if other_rule else {}
    letters = []
    for letter, (main, split, fraction) in sae_classes.items():
        letters.append(dict(
            sae_key=key, letter=letter, included=probe_f1[letter] > 0.6, split_latents=split, n_split=len(split),
            split_stability=sum(fold_split(key, letter, f, split) == split for f in range(folds)) / folds,
            main_stability=1.0, main_latent=main, main_encoder_cos=0.5, main_precision=0.3, main_recall=0.9, main_f1=0.45,
            main_in_split=main in split, other_split_latents=changed[letter][0] if letter in changed else None,
            other_absorption_fraction=changed[letter][1] if letter in changed else None,
            other_full_absorption_rate=0.0 if letter in changed else None,
            best_latent=main, best_precision=0.3, best_recall=0.9, best_f1=0.45, n_probe_true_positives=4,
            mean_absorption_fraction=fraction, absorption_fraction_low=fraction / 2, absorption_fraction_high=fraction,
            full_absorption_rate=0.0, full_absorption_rate_low=0.0, full_absorption_rate_high=0.0,
            n_full_absorption=0, paper_absorption_rate=0.0, paper_absorption_rate_low=0.0,
            paper_absorption_rate_high=0.0, n_candidates=0, n_sampled=0, n_paper_absorption=0))
    fold_rows = [dict(sae_key=key, letter=letter, fold=fold, split_latents=fold_split(key, letter, fold, split),
                      main_latent=main, main_f1=0.45, n_probe_true_positives=2, mean_absorption_fraction=fraction,
                      full_absorption_rate=0.0, paper_absorption_rate=0.0, n_candidates=0, n_sampled=0,
                      other_split_latents=None)
                 for letter, (main, split, fraction) in sae_classes.items() for fold in range(folds)]
    k_rows = [dict(sae_key=key, letter=letter, fold=fold, k=1, latents=[main], weights=[1.0], bias=0.0, precision=0.3,
                   recall=0.9, f1=0.45) for letter, (main, _, _) in sae_classes.items() for fold in range(folds)]
    word_class = "t" if first_letter else SWEEP_TASK_WORD_CLASS[SWEEP_WORD_TOKEN]
    split = sae_classes[word_class][1]
    words, split_acts = [], []
    if key in (SWEEP_WORD if first_letter else SWEEP_TASK_WORD):  # a word that was not absorbed keeps no row
        fraction, full, top = (SWEEP_WORD if first_letter else SWEEP_TASK_WORD)[key]
        words = [dict(sae_key=key, metric="projection", letter=word_class, token_id=SWEEP_WORD_TOKEN, fold=0,
                      probe_projection=2.0, absorption_fraction=fraction,
                      is_full_absorption=full, is_absorption=None, **stored_absorber(top, [2.0, 1.0], [0.3, 0.1], split))]
        if not full:  # its split latents fire (1.0 each); a fully absorbed word's are silent: no rows
            split_acts = [dict(sae_key=key, token_id=SWEEP_WORD_TOKEN, split_index=i + 1, act=1.0) for i in range(len(split))]
    d_sae = next(s.d_sae for s in SWEEP if s.key == key)
    from contract.schema import COS_BLOCK, COS_SCALE

    cosine = ((lambda latent, i: sweep_letter_cos(latent, LETTERS[i])) if first_letter else sweep_class_cos)
    n_classes = len(LETTERS) if first_letter else len(SWEEP_TASK_CLASSES)
    blocks = [range(start, min(start + COS_BLOCK, d_sae)) for start in range(0, d_sae, COS_BLOCK)]
    cos = [dict(sae_key=key, class_index=i + 1, first_latent=block.start,
                decoder_cos=[round(COS_SCALE * cosine(latent, i)) for latent in block],
                encoder_cos=[round(COS_SCALE / 2 * cosine(latent, i)) for latent in block])
           for i in range(n_classes) for block in blocks]
    return {"sae_absorption": [summary], "sae_letters": letters, "sae_letter_folds": fold_rows, "sae_letter_k": k_rows,
            "absorption_words": words, "absorption_split_acts": split_acts, "latent_letter_cos": cos}


def sweep_letter_cos(latent: int, letter: str) -> float:
    """A latent's (synthetic) decoder cosine with a letter's probe: 0.00 .. 0.18 in steps of 0.02."""
    return round(0.02 * ((latent + ord(letter)) % 10), 2)


def build_sweep_database(root: Path, n_rows: int = 32, second_run: tuple[str, ...] = (),
                         second_task: bool = False) -> Path:
    """SWEEP's SAEs run through the real precompute job (dashboards, `saes`, `latent_matches`), then
    synthetic absorption rows with known numbers for every SAE but w32. Every hook has one probe run;
    the SAEs in `second_run` are measured against a second run at their hook (another config). second_task: w8
    and w16 are measured on SWEEP_TASK too (its own probe run at HOOK; the app's tests), else first_letter only (a
    database as schema v9 could hold: the migration tests)."""
    import duckdb

    from precompute.loading.sae import SAESpec
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, run_job

    corpus = root / "corpus.parquet"
    random_corpus(corpus, n_rows)
    specs = [SAESpec(key=s.key, path=planted_sae_folder(root, s.d_sae, s.seed, name=s.key, hook=s.hook,
                                                        planted_latent=s.planted_latent, aligned_decoder=True,
                                                        training_architecture=s.training_architecture))
             for s in SWEEP]
    db_path = root / "sweep.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, n_rows), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=5, context_left=2, context_right=1),
                       absorption=None)
    run_job(specs, config, model=tiny_model(), tokenizer=FakeTokenizer(), log=lambda *_: None)
    tables: dict[str, list[dict]] = {"tasks": sweep_tasks() if second_task else sweep_tasks()[:1]}
    runs = {sweep_probe_run_id(hook): (hook, "", "first_letter") for hook in (HOOK, EARLY_HOOK)}
    runs.update({sweep_probe_run_id(s.hook, "b"): (s.hook, "b", "first_letter") for s in SWEEP if s.key in second_run})
    if second_task:
        runs[sweep_probe_run_id(HOOK, task=SWEEP_TASK)] = (HOOK, "", SWEEP_TASK)  # SWEEP_TASK's SAEs are at HOOK
    for run_id, (hook, variant, task) in runs.items():
        for table, rows in _probe_rows(hook, run_id, SWEEP_FOLDS_B if variant == "b" else 1, task).items():
            tables.setdefault(table, []).extend(rows)
    for sae in SWEEP:
        if sae.key in SWEEP_ABSORPTION:
            run_id = sweep_probe_run_id(sae.hook, "b" if sae.key in second_run else "")
            folds = SWEEP_FOLDS_B if sae.key in second_run else 1
            for table, rows in _absorption_rows(sae.key, sae.hook, run_id, folds).items():
                tables.setdefault(table, []).extend(rows)
        if second_task and sae.key in SWEEP_TASK_ABSORPTION:
            run_id = sweep_probe_run_id(sae.hook, task=SWEEP_TASK)
            for table, rows in _absorption_rows(sae.key, sae.hook, run_id, 1, SWEEP_TASK).items():
                tables.setdefault(table, []).extend(rows)
    with duckdb.connect(str(db_path)) as con:
        for row in tables["tasks"]:  # a build may have written the registry's rows: these replace them
            con.execute("DELETE FROM tasks WHERE task = ?", [row["task"]])
        for table, rows in tables.items():
            if rows:
                _insert(con, table, rows)
        from precompute.pipeline.probe_free import run_scores_stage

        run_scores_stage(con, log=lambda *_: None)  # validates the scores against these rows, as a build would
    return db_path


# --- running text: builds whose absorption stage is a fake with known letter latents -------------------------
RUNNING_WORDS = {PLANTED_TOKEN: " snake", 8: " sun", 9: "Tea", 10: " xylophone", 11: " zebra", 13: "skin"}
RUNNING_ABSENT_TOKEN = 11  # alphabetic, but never in running_text_corpus


class WordTokenizer(FakeTokenizer):
    """Tokens of RUNNING_WORDS decode as those words (alphabetic tokens); the others as ' t<i>'."""

    def decode(self, ids: list[int]) -> str:
        return "".join(RUNNING_WORDS.get(i, f" t{i}") for i in ids)


def running_text_corpus(path: Path, n_rows: int) -> np.ndarray:
    """random_corpus without RUNNING_ABSENT_TOKEN."""
    rows = random_corpus(path, n_rows)
    rows[rows == RUNNING_ABSENT_TOKEN] = RUNNING_ABSENT_TOKEN + 1
    pq.write_table(pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))}), path)
    return rows


def numbered(con, table: str, values: dict) -> dict:
    """A row written by key (sae_key, other_sae_key) as the table stores it: by the SAE's number where the table
    names SAEs by number (as precompute.storage.writer.insert_arrow does)."""
    stored = {row[0] for row in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                            [table]).fetchall()}
    row = dict(values)
    for key_column in [c for c in values if c.endswith("sae_key")]:
        number = key_column.replace("sae_key", "sae_num")
        if number in stored and number not in row:
            row[number] = sae_number(con, row[key_column])
            if key_column not in stored:
                del row[key_column]
    return row


def insert_row(con, table: str, values: dict) -> None:
    """One row with `values`; every other NOT NULL column gets a placeholder (0, '', false, [], 2000-01-01), so
    the fake keeps working while the absorption tables change. Column names come from the catalog."""
    row = numbered(con, table, values)
    for name, kind, nullable in con.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                                            "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall():
        if name == "task" and name not in row and table != "tasks":
            row[name] = "first_letter"  # every fake result is a first-letter one unless it says
            ensure_task_rows(con)  # and the pages read its classes from its tasks row, which a fake stage lacks
        elif name not in row and nullable == "NO":
            row[name] = ([] if kind.endswith("[]") else [0] * int(kind[kind.rindex("[") + 1:-1]) if kind.endswith("]")
                         else "" if kind == "VARCHAR" else False if kind == "BOOLEAN"
                         else datetime(2000, 1, 1) if kind.startswith("TIMESTAMP") else 0)
    columns = list(row)
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                [row[c] for c in columns])


def ensure_task_rows(con, names: tuple[str, ...] = ("first_letter",)) -> None:
    """The registry's `tasks` rows for these tasks, where the database lacks them (a fake absorption stage writes
    results without the real stage's tasks rows)."""
    from precompute.absorption.tasks import TASKS

    for name in names:
        if not con.execute("SELECT count(*) FROM tasks WHERE task = ?", [name]).fetchall()[0][0]:
            task = TASKS[name]
            con.execute("INSERT INTO tasks (task, title, description, classes, answers, prompt_template) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [name, task.title, task.description, list(task.classes),
                                                      list(task.answers), task.template])


@dataclass(frozen=True)
class FakeAbsorption:
    """What the fake absorption stage writes for each SAE in `measured`: letter -> (main latent, split latents)
    in sae_letters, and, with `probe_words` (token -> (letter, fully absorbed by top_latents[0] or not,
    top_latents)), one probe run at HOOK with those test words and their projection rows."""

    measured: tuple[str, ...]
    letters: dict[str, tuple[int, list[int]]]
    probe_words: dict[int, tuple[str, bool, list[int]]] | None = None


def has_table(con, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()[0][0] > 0


def fake_absorption_stage(fake: FakeAbsorption, calls: list):
    """A stand-in for precompute.absorption.stage.run_absorption_stage; records which SAEs had dashboards."""
    from datetime import timezone

    def stage(con, specs, model, model_name, config, force, device="cpu", log=print, tasks=("first_letter",)):
        calls.append(("absorption", {row[0] for row in con.execute("SELECT sae_key FROM saes").fetchall()}))
        done = {row[0] for row in con.execute("SELECT sae_key FROM sae_absorption").fetchall()}
        if fake.probe_words and not con.execute("SELECT count(*) FROM probe_runs").fetchall()[0][0]:
            insert_row(con, "probe_runs", {"probe_run_id": "run", "model_name": model_name, "hook_name": HOOK,
                                           "prompt_template": "{word} has the first letter:"})
            insert_row(con, "probe_prefixes", {"probe_run_id": "run", "model_name": model_name, "hook_name": HOOK,
                                               "prefix_id": 0, "text": "cat has the first letter: C\n"})
            for token, (letter, _, _) in fake.probe_words.items():
                insert_row(con, "probe_words", {"probe_run_id": "run", "token_id": token, "letter": letter, "is_test": True,
                                                "fold": 0, "prefix_id": 0, "probe_logit": 2.0})
        for spec in specs:
            if spec.key not in fake.measured or (spec.key in done and not force):
                continue
            for table in ("absorption_words", "absorption_split_acts", "sae_letter_folds", "sae_letters", "sae_absorption"):
                if has_table(con, table):
                    by_key = ("sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?)"
                              if table.startswith("absorption_") else "sae_key = ?")
                    con.execute(f"DELETE FROM {table} WHERE {by_key}", [spec.key])  # names from this file
            insert_row(con, "sae_absorption", {"sae_key": spec.key, "probe_run_id": "run", "hook_name": HOOK,
                                               "created_at": datetime.now(timezone.utc).replace(tzinfo=None)})
            for letter, (main, split) in fake.letters.items():
                insert_row(con, "sae_letters", {"sae_key": spec.key, "probe_run_id": "run", "letter": letter,
                                                "split_latents": split, "n_split": len(split), "main_latent": main,
                                                "best_latent": main, "included": True})
                if has_table(con, "sae_letter_folds"):  # cross-fitted results: one fold holds every word here
                    insert_row(con, "sae_letter_folds", {"sae_key": spec.key, "probe_run_id": "run", "letter": letter,
                                                         "fold": 0, "split_latents": split, "main_latent": main})
            for token, (letter, full, top) in (fake.probe_words or {}).items():
                if not full:
                    continue  # as the real stage: a word that was not absorbed keeps no projection row
                insert_row(con, "absorption_words", {
                    "sae_key": spec.key, "probe_run_id": "run", "metric": "projection", "letter": letter,
                    "token_id": token, "probe_projection": 2.0,
                    "absorption_fraction": 0.9 if full else 0.0, "is_full_absorption": full,
                    **stored_absorber(top, [5.0] * len(top), [0.5] * len(top), fake.letters[letter][1])})
        return {}

    return stage


def build_running_text_database(root: Path, fake: FakeAbsorption, monkeypatch, calls: list | None = None,
                                keys: tuple[str, ...] = ("measured", "unmeasured"), n_rows: int = 48,
                                absorption: bool = True, force: bool = False, n_token_latents: int = 3,
                                log=None) -> Path:
    """The real job on the tiny model and the planted SAE (under `keys`) over running_text_corpus (written once),
    with WordTokenizer's vocabulary and the fake absorption stage (absorption=False: a dashboards-only build)."""
    from precompute.absorption import stage
    from precompute.absorption.config import AbsorptionConfig
    from precompute.loading.sae import SAESpec
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, run_job

    monkeypatch.setattr(stage, "run_absorption_stage", fake_absorption_stage(fake, [] if calls is None else calls))
    corpus, folder = root / "corpus.parquet", root / "planted-sae"
    if not corpus.exists():
        running_text_corpus(corpus, n_rows)
    if not folder.exists():
        planted_sae_folder(root)
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, n_rows), db_path=root / "explorer.duckdb",
                       force=force, absorption=AbsorptionConfig() if absorption else None,
                       dashboard=DashboardConfig(batch_size=16, n_top=5, context_left=2, context_right=1,
                                                 n_token_latents=n_token_latents))
    run_job([SAESpec(key=key, path=folder) for key in keys], config, model=tiny_model(), tokenizer=WordTokenizer(),
            log=log or (lambda *_: None))
    return config.db_path


# --- probe-free absorption scores: an SAE with planted suspects -------------------------------------------------
SUSPECT_D_SAE = 16
SUSPECT_ENC_DEC = 9  # its decoder points against its encoder: enc_dec score 2, the largest possible
SUSPECT_CHILD = PLANTED_LATENT  # its decoder is mostly PARENT's: the top parent score, with PARENT named
SUSPECT_PARENT = 1  # fires on every token (large bias): the densest latent
SUSPECT_ABSORBERS = (SUSPECT_ENC_DEC, SUSPECT_CHILD, 0, 2, 4, 6)  # the planted absorbers of 3 full words each


def suspect_sae_folder(root: Path, name: str = "suspect-sae") -> Path:
    """planted_sae_folder at SUSPECT_D_SAE latents with every decoder row along its encoder column (enc_dec
    score 0), except SUSPECT_ENC_DEC (decoder = -encoder) and SUSPECT_CHILD (decoder = PARENT's direction plus a
    little of its own planted one), and SUSPECT_PARENT always on."""
    from sae_lens import SAE

    folder = planted_sae_folder(root, SUSPECT_D_SAE, seed=7, name=name)
    sae = SAE.load_from_disk(str(folder), device="cpu")
    with torch.no_grad():
        sae.b_enc[SUSPECT_PARENT] = 10.0
        enc = torch.nn.functional.normalize(sae.W_enc.T.clone(), dim=-1)
        enc[DEAD_LATENT] = torch.nn.functional.normalize(torch.randn(D_MODEL), dim=-1)  # its encoder is zero
        dec = enc.clone()
        dec[SUSPECT_ENC_DEC] = -enc[SUSPECT_ENC_DEC]
        dec[SUSPECT_CHILD] = torch.nn.functional.normalize(enc[SUSPECT_PARENT] + 0.2 * enc[SUSPECT_CHILD], dim=0)
        sae.W_dec.copy_(dec)
    sae.save_model(str(folder))
    return folder


def build_suspect_database(root: Path, n_rows: int = 64) -> Path:
    """The suspect SAE through the real build (dashboards, then the probe-free scores), then synthetic absorption
    results naming SUSPECT_ABSORBERS as full absorbers, validated by the scores stage as a build would."""
    import duckdb

    from precompute.loading.sae import SAESpec
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, run_job
    from precompute.pipeline.probe_free import run_scores_stage

    corpus = root / "corpus.parquet"
    random_corpus(corpus, n_rows)
    db_path = root / "suspect.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, n_rows), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=5, context_left=2, context_right=1),
                       absorption=None)
    run_job([SAESpec(key="suspect", path=suspect_sae_folder(root))], config, model=tiny_model(),
            tokenizer=FakeTokenizer(), log=lambda *_: None)
    with duckdb.connect(str(db_path)) as con:
        insert_row(con, "sae_absorption", {"sae_key": "suspect", "probe_run_id": "run", "hook_name": HOOK})
        for i, latent in enumerate(SUSPECT_ABSORBERS):
            for word in range(3):
                insert_row(con, "absorption_words", {
                    "sae_key": "suspect", "probe_run_id": "run", "metric": "projection", "letter": "t",
                    "token_id": 3 * i + word, "probe_projection": 2.0,
                    "absorption_fraction": 0.9, "is_full_absorption": True, "absorber": latent,
                    "absorber_act": 1.0, "absorber_score": 0.5})
        run_scores_stage(con, log=lambda *_: None)
    return db_path


# --- what the writers write, against the DDL -----------------------------------------------------------
# Written by SQL in the writer itself, not from an Arrow table: the meta rows and the SAEs' numbers.
WRITTEN_BY_SQL = {"meta", "sae_numbers", "tasks"}  # tasks: writer.write_task (an upsert)
# The tables the absorption stage's build (tests/precompute/absorption/test_stage.py) must write; the tiny
# dashboards build (tests/precompute/storage/test_ddl.py) writes the rest.
ABSORPTION_BUILD_TABLES = {"probe_runs", "letter_probes", "probe_folds", "probe_words", "probe_prefixes",
                           "sae_absorption", "sae_letters", "sae_letter_folds", "sae_letter_k", "latent_letter_cos",
                           "absorption_words", "absorption_split_acts", "token_letters", "score_validation"}
# The tables only a build on the toy model writes (tests/precompute/toy/test_hierarchy.py checks them).
TOY_BUILD_TABLES = {"truth_features", "truth_words", "truth_latents"}


@contextmanager
def recording_writes():
    """Records the column names of every Arrow table handed to the writer (`insert_arrow`), by table, as the
    table-building functions name them (SAEs by sae_key), and writes them as usual."""
    from precompute.storage import writer

    written: dict[str, set[tuple[str, ...]]] = {}
    real = writer.insert_arrow

    def record(con, table: str, data: pa.Table) -> None:
        written.setdefault(table, set()).add(tuple(data.column_names))
        real(con, table, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer, "insert_arrow", record)
        yield written


def ddl_columns() -> dict[str, dict[str, bool]]:
    """Per table of contract/sql/schema.sql: its columns, each with whether a row must give it (NOT NULL, no default)."""
    import duckdb

    from contract.schema import ddl_statements

    with duckdb.connect() as con:
        for statement in ddl_statements():
            con.execute(statement)
        rows = con.execute("SELECT table_name, column_name, is_nullable = 'NO' AND column_default IS NULL "
                           "FROM information_schema.columns ORDER BY table_name, ordinal_position").fetchall()
    tables: dict[str, dict[str, bool]] = {}
    for table, column, required in rows:
        tables.setdefault(table, {})[column] = required
    return tables


def stored_columns(written: tuple[str, ...], ddl: dict[str, bool]) -> set[str]:
    """The columns a row written with these names fills: an SAE named by key (sae_key, other_sae_key) fills the
    table's number column (sae_num, other_sae_num) when it has one, and its key column only if it has that too
    (the writer's with_sae_numbers)."""
    stored = set()
    for column in written:
        number = column.replace("sae_key", "sae_num") if column.endswith("sae_key") else None
        if number in ddl:
            stored.add(number)
            if column in ddl:
                stored.add(column)
        else:
            stored.add(column)
    return stored


def ddl_mismatches(written: dict[str, set[tuple[str, ...]]]) -> list[str]:
    """What the recorded writes do not agree with the DDL on: unknown tables, columns the table lacks, and
    columns a row must give (NOT NULL without a default) that a write left out."""
    ddl = ddl_columns()
    problems = []
    for table, shapes in sorted(written.items()):
        if table not in ddl:
            problems.append(f"{table}: written, but the DDL has no such table")
            continue
        required = {column for column, must in ddl[table].items() if must}
        for names in sorted(shapes):
            stored = stored_columns(names, ddl[table])
            if extra := sorted(stored - set(ddl[table])):
                problems.append(f"{table}: written with {extra}, which the DDL lacks")
            if missing := sorted(required - stored):
                problems.append(f"{table}: written without {missing}, NOT NULL without a default in the DDL")
    return problems
