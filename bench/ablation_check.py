"""Does ablating the absorber hurt the model's spelling? The spelling check of /live (live/spell.py) on every fully
absorbed word of one SAE and task in a database: the task's own prompt for the word, the model's margin for the right
answer (its logit minus the mean of the other classes' answers) as it is, with the recorded absorber ablated at the
word, and with a control latent ablated (another latent active on the word, of the density closest to the
absorber's). It prints the share of words where each ablation lowers the margin (Wilson 95 % intervals), the mean
change (bootstrap 95 %), the paired share where the absorber's ablation lowers it more than the control's, and how
this agrees with the stored paper-metric verdicts (integrated-gradients ablation) where that metric sampled the word.

    python bench/ablation_check.py [--db assets/demo.duckdb] [--sae smollm2-l6-topk-4k-k32] [--task first_letter]
                                   [--limit N | --sample N --seed S] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from thread_limits import cap_threads_from_argv  # noqa: E402  (bench/, the script's folder)

cap_threads_from_argv()

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from backend.database import DEFAULT_DB_PATH, ExplorerDB  # noqa: E402
from contract.schema import DEFAULT_SAE_META_KEY  # noqa: E402
from live import inference, spell  # noqa: E402


@dataclass(frozen=True)
class WordCheck:
    word: str
    as_is: float  # margin
    absorber_change: float  # margin change with the absorber ablated
    control_change: float | None  # with the control ablated (None: no other latent active on the word)
    correct_as_is: bool  # the model's top answer among the classes is the right one
    paper: bool | None  # the paper metric's verdict (None: it did not sample the word)


def fully_absorbed(db: ExplorerDB, sae_key: str, task: str) -> list[tuple[int, str, bool | None]]:
    """(token id, word, paper verdict) of every fully absorbed word with a recorded absorber."""
    out = []
    for letter in db.sae_letters(sae_key, task)["letter"]:
        words = db.absorbed_words(sae_key, letter, task)
        paper = {int(r.token_id): bool(r.is_absorption) for r in words.itertuples() if r.metric == "ablation"}
        for r in words.itertuples():
            if r.metric == "projection" and r.is_full_absorption and r.absorber == r.absorber:  # not NaN
                out.append((int(r.token_id), str(r.word), paper.get(int(r.token_id))))
    return out


def check_word(model, loaded: inference.LoadedSAE, db: ExplorerDB, sae_key: str, task, token_id: int, word: str,
               paper: bool | None) -> WordCheck | None:
    found = db.spell_prompt_of_token(sae_key, task.task, token_id)
    if found is None or found.absorber is None:
        return None
    bos = model.tokenizer.bos_token_id if model.cfg.default_prepend_bos else None
    prompt = spell.build_prompt(model.tokenizer, found.prefix, found.template, found.token_id, bos)
    answers = [model.tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in task.answers]
    correct = task.classes.index(found.class_name)
    codes = spell.word_codes(model, loaded.sae, loaded.hook_name, prompt)
    active = [int(i) for i in np.flatnonzero(codes > 0)]
    densities = db.latent_densities(sae_key, active + [found.absorber])
    exclude = {found.absorber, *found.split_latents, *([found.main_latent] if found.main_latent is not None else [])}
    control = spell.control_latent(codes, exclude, densities, densities.get(found.absorber))
    conditions = [spell.Condition(spell.AS_IS, ()), spell.Condition("absorber", (found.absorber,))]
    if control is not None:
        conditions.append(spell.Condition("control", (control,)))
    rows = spell.run_conditions(model, loaded.sae, loaded.hook_name, prompt, answers, correct, conditions, codes)
    return WordCheck(word, rows[0].margin, rows[1].margin - rows[0].margin,
                     rows[2].margin - rows[0].margin if control is not None else None, rows[0].correct_rank == 1, paper)


def wilson(k: int, n: int) -> str:
    if n == 0:
        return "—"
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return f"{k / n:.2f} [{ci.low:.2f}, {ci.high:.2f}] ({k}/{n})"


def mean_ci(values: np.ndarray) -> str:
    if len(values) < 2:
        return "—"
    ci = stats.bootstrap((values,), np.mean, n_resamples=2000, random_state=0).confidence_interval
    return f"{values.mean():+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"


def report(checks: list[WordCheck]) -> None:
    absorber = np.array([c.absorber_change for c in checks])
    paired = [c for c in checks if c.control_change is not None]
    control = np.array([c.control_change for c in paired])
    print("| | share of words where the margin drops | mean margin change |")
    print("| --- | --- | --- |")
    print(f"| absorber ablated | {wilson(int((absorber < 0).sum()), len(absorber))} | {mean_ci(absorber)} |")
    print(f"| control ablated | {wilson(int((control < 0).sum()), len(control))} | {mean_ci(control)} |")
    more = sum(c.absorber_change < c.control_change for c in paired)
    print(f"\nabsorber's ablation lowers the margin more than the control's: {wilson(more, len(paired))}")
    print(f"model's top answer right as is: {wilson(sum(c.correct_as_is for c in checks), len(checks))}")
    sampled = [c for c in checks if c.paper is not None]
    print(f"\nagreement with the paper metric (words it sampled: {len(sampled)} of {len(checks)}):")
    print("| paper metric | margin drops with the absorber ablated | does not |")
    print("| --- | --- | --- |")
    for verdict in (True, False):
        group = [c for c in sampled if c.paper is verdict]
        drops = sum(c.absorber_change < 0 for c in group)
        print(f"| {'absorbed' if verdict else 'not absorbed'} | {drops} | {len(group) - drops} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--sae", default=None, help="default: the database's default SAE")
    parser.add_argument("--task", default="first_letter")
    parser.add_argument("--limit", type=int, default=None, help="check at most this many words (default: all)")
    parser.add_argument("--sample", type=int, default=None,
                        help="check a seeded random sample of this many words instead (every letter represented)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the live page's choice)")
    args = parser.parse_args()
    if args.threads:
        os.environ["EXPLORER_TORCH_THREADS"] = str(args.threads)  # inference.load_model sets torch's threads
    db = ExplorerDB(args.db)
    sae_key = args.sae or db.meta.get(DEFAULT_SAE_META_KEY) or db.sae_keys()[0]
    task = db.task(args.task)
    row = db.sae(sae_key)
    source = inference.SAESource.from_row(row)
    loaded = inference.load_sae(source, args.db)
    model = inference.load_model(source.model_name, loaded.model_kwargs)
    words = fully_absorbed(db, sae_key, args.task)[: args.limit]
    if args.sample is not None and args.sample < len(words):
        import random

        words = sorted(random.Random(args.seed).sample(words, args.sample), key=lambda w: w[0])
    print(f"{args.db}: `{sae_key}`, task {args.task}: {len(words)} fully absorbed words with an absorber")
    start = time.perf_counter()
    checks = [c for token_id, word, paper in words
              if (c := check_word(model, loaded, db, sae_key, task, token_id, word, paper)) is not None]
    print(f"{len(checks)} checked in {time.perf_counter() - start:.0f} s\n")
    report(checks)


if __name__ == "__main__":
    main()
