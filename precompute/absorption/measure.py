"""The per-SAE measurement: the SAE's codes on the hook's words, k-sparse probing for the split latents and the main
latent per class and fold, the projection metric on every measured word (which names each absorbed word's
absorber), and the intervals over folds and words."""

from __future__ import annotations

import copy
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from transformer_lens import HookedTransformer

from precompute.absorption import ablation as abl
from precompute.absorption import baselines as base
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.activations import fast_passes
from precompute.absorption.codes import Codes, as_csr, column, columns, encode_words, gather
from precompute.absorption.config import AbsorptionConfig
from precompute.absorption.hook import HookProbeData
from precompute.absorption.paper import run_paper_metric
from precompute.absorption.projection import ProjectionResult, projection_absorption
from precompute.absorption.stats import Interval, between_fold_sd, fold_and_word_intervals
from precompute.loading.packed import packed_linears
from precompute.util.blocks import row_blocks


@dataclass
class LetterFold:
    """One letter measured in one fold: against that fold's probe, split latents and main latent."""
    fold: int
    split: ks.LetterSplit
    main: ks.MainLatent
    true_positives: np.ndarray  # word indices: the fold's words of this letter its probe gets right
    projection: ProjectionResult  # over true_positives
    split_acts: np.ndarray  # [n_tp, n_split]
    top_acts: np.ndarray  # [n_tp, k] activations of the top latents by projection
    decoder_cos: np.ndarray  # [d_sae] decoder rows against this fold's probe direction
    candidates: np.ndarray  # word indices eligible for the paper metric
    sampled: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # candidates measured
    paper: abl.PaperAbsorption | None = None
    paper_weights: np.ndarray | None = None  # [n_tp]: is_absorption / sample portion, 0 where not sampled
    # the other split-latent rule's choice on the same fold (method sensitivity), and the projection metric under
    # it where it chose other latents (None: the same split latents, so the same numbers)
    other_split: ks.LetterSplit | None = None
    other_projection: ProjectionResult | None = None

    @property
    def other_projection_or_own(self) -> ProjectionResult:
        return self.other_projection if self.other_projection is not None else self.projection


@dataclass
class LetterAbsorption:
    letter: int
    folds: list[LetterFold]
    split_latents: list[int]  # the selection most folds made (ties: the earliest fold's)
    split_stability: float  # share of folds whose split latents are exactly split_latents
    main: ks.MainLatent  # the main latent most folds chose, scored over every measured word
    main_stability: float  # share of folds choosing it
    best_latent: base.BaselineScore

    @property
    def true_positives(self) -> np.ndarray:
        return np.concatenate([f.true_positives for f in self.folds])

    def per_fold(self, name: str) -> list[np.ndarray]:
        """A per-word quantity, one array per fold: 'fraction', 'full' or 'paper'."""
        pick = {"fraction": lambda f: f.projection.absorption_fraction,
                "full": lambda f: f.projection.is_full_absorption.astype(float),
                "other_fraction": lambda f: f.other_projection_or_own.absorption_fraction,
                "other_full": lambda f: f.other_projection_or_own.is_full_absorption.astype(float),
                "paper": lambda f: f.paper_weights if f.paper_weights is not None else np.zeros(len(f.true_positives))}
        return [pick[name](f) for f in self.folds]

    @property
    def other_split_latents(self) -> list[int]:
        """The other rule's most frequent selection over the folds (ties: the earliest fold's)."""
        if any(f.other_split is None for f in self.folds):
            return self.split_latents
        return list(modal([tuple(f.other_split.split_latents) for f in self.folds])[0])

    @property
    def rules_disagree(self) -> bool:
        """Some fold's two rules chose different split latents."""
        return any(f.other_projection is not None for f in self.folds)

    @property
    def main_in_split(self) -> bool:
        """The class's main latent (best encoder cosine) is among its split latents. When it is not, the
        projection metric can name the class's own main latent as the absorber of the class's words."""
        return self.main.latent in self.split_latents

    @property
    def n_full_absorption(self) -> int:
        return int(sum(f.projection.is_full_absorption.sum() for f in self.folds))

    @property
    def n_candidates(self) -> int:
        return int(sum(len(f.candidates) for f in self.folds))

    @property
    def n_sampled(self) -> int:
        return int(sum(len(f.sampled) for f in self.folds))

    @property
    def n_paper_absorption(self) -> int:
        return int(sum(f.paper.is_absorption.sum() for f in self.folds if f.paper is not None))

    @property
    def has_paper(self) -> bool:
        return any(f.paper is not None for f in self.folds)


@dataclass
class SAEAbsorption:
    sae_key: str
    hook: HookProbeData
    decoder_cos: np.ndarray  # [d_sae, 26] against the display probe
    encoder_cos: np.ndarray  # [d_sae, 26]
    letters: list[LetterAbsorption]
    fraction: tuple[dict[int, Interval], Interval]
    full: tuple[dict[int, Interval], Interval]
    paper_rate: tuple[dict[int, Interval], Interval]
    fold_sd: dict[str, float]  # 'fraction' / 'full' / 'paper': between-fold SD of the headline number
    included_letters: list[int]
    seconds: dict[str, float]
    split_rule: str = "guarded"  # the rule the numbers above use (ksparse.SPLIT_RULES)
    other_rule: str = "l1"  # measured beside it: the same numbers under the other rule's split latents
    other_fraction: tuple[dict[int, Interval], Interval] | None = None
    other_full: tuple[dict[int, Interval], Interval] | None = None

    @property
    def rule_changed_letters(self) -> list[int]:
        """Included letters where the two rules chose different split latents in some fold."""
        return [j for j in self.included_letters if self.letters[j].rules_disagree]

    @property
    def main_outside_split_letters(self) -> list[int]:
        """Included letters whose main latent is not among their split latents."""
        return [j for j in self.included_letters if not self.letters[j].main_in_split]

    @property
    def unstable_letters(self) -> list[int]:
        """Included letters whose split latents change between folds."""
        return [j for j in self.included_letters if self.letters[j].split_stability < 1.0]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def row_cosines(rows: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """[d_sae, 26] cosine of each row of rows [d_sae, d_model] with unit directions [26, d_model], a block of rows
    at a time (no unit-norm copy of the whole decoder or encoder)."""
    return np.concatenate([unit_rows(rows[block]) @ directions.T for block in row_blocks(len(rows), rows.shape[1])]
                          or [np.zeros((0, len(directions)), dtype=rows.dtype)])


def row_norms(rows: np.ndarray) -> np.ndarray:
    """[d_sae] L2 norm of each row, a block of rows at a time."""
    return np.concatenate([np.linalg.norm(rows[block], axis=1) for block in row_blocks(len(rows), rows.shape[1])]
                          or [np.zeros(0, dtype=rows.dtype)])


def normalized_sae(sae):
    """A copy with unit-norm decoder rows (codes rescaled to match), as both references require."""
    folded = copy.deepcopy(sae)
    with torch.no_grad():
        folded.fold_W_dec_norm()
    return folded


def modal(choices: list[tuple]) -> tuple[tuple, float]:
    """The most frequent choice (ties: the earliest) and the share of choices equal to it."""
    counts = Counter(choices)
    best = max(counts.values())
    winner = next(c for c in choices if counts[c] == best)
    return winner, best / len(choices)


def latent_as_classifier(latent: int, letter: int, encoder_cos: float, activations: np.ndarray,
                         labels: np.ndarray, n_classes: int) -> ks.MainLatent:
    """A latent scored as a classifier that says `letter` whenever it is active (> 0). activations: [n], the
    latent's codes on the scored words."""
    decisions = np.zeros((len(labels), n_classes), dtype=bool)
    decisions[:, letter] = activations > 0
    scores = pr.classifier_scores(decisions, labels)
    return ks.MainLatent(letter, latent, encoder_cos, float(scores.precision[letter]), float(scores.recall[letter]),
                         float(scores.f1[letter]))


@dataclass
class SAEWeights:
    """What the per-fold work reads of one (decoder-normalised) SAE."""
    W_dec: np.ndarray  # [d_sae, d_model]
    W_enc_rows: np.ndarray  # [d_sae, d_model] encoder columns as rows (a view, not normalised)
    decoder_norms: np.ndarray  # [d_sae]

    @classmethod
    def of(cls, sae) -> "SAEWeights":
        W_dec = sae.W_dec.detach().float().cpu().numpy()
        return cls(W_dec, sae.W_enc.detach().float().cpu().numpy().T, row_norms(W_dec))


FOLD_WORKERS: int | None = None  # folds measured at once; None: one more than torch's threads (1: one after the other)


def measure_folds(codes: Codes, weights: SAEWeights, hook: HookProbeData, config: AbsorptionConfig) -> list[list[LetterFold]]:
    """measure_fold for every fold, several at once: a fold is ~100 small scikit-learn fits and 500 small sparse probe
    steps, mostly single-threaded and partly holding the GIL, so one fold more than torch has threads keeps the cores
    busy (5 folds on 2 cores: 3 at once, two rounds; the JumpReLU's whole-vocabulary stage 24.3 s one after the other,
    17-18 s two at once, 16.1 s three: `python bench/ksparse_speed.py --threads 2`). The folds share nothing they
    write, and each gives what it gives alone (the probe's initial weights are drawn under probe.GLOBAL_RNG)."""
    workers = max(1, min(config.fold_count, FOLD_WORKERS or torch.get_num_threads() + 1))
    if workers == 1:
        return [measure_fold(fold, codes, weights, hook, config) for fold in range(config.fold_count)]
    with ThreadPoolExecutor(workers, thread_name_prefix="fold") as pool:
        return list(pool.map(lambda fold: measure_fold(fold, codes, weights, hook, config), range(config.fold_count)))


def measure_fold(fold: int, codes: Codes, weights: SAEWeights, hook: HookProbeData,
                 config: AbsorptionConfig) -> list[LetterFold]:
    """Every letter in one fold: the L1 probe, k-sparse probing and main latents fitted on the fold's
    training words, then both metrics' inputs on the fold's words. Split latents are chosen per fold, like
    the probe, so no word is measured against latents selected on it (and the folds' choices can be compared).
    codes [n_words, d_sae]: CSR in a build; dense codes give the same results (the tests compare both)."""
    labels = hook.prompts.labels
    train, test = hook.training_words(fold), hook.fold_words(fold)
    probe = hook.fold_probes[fold]
    # codes are sparse (L0 of tens over thousands of latents): the L1 probe and the k-sparse fits read CSR rows
    train_codes, test_codes = as_csr(codes[train]), codes[test]
    sparse = pr.train_sparse_probe(train_codes, labels[train], config.sparse_probe, config.n_classes)
    mains = ks.main_latents(row_cosines(weights.W_enc_rows, probe.directions()), test_codes, labels[test])
    main_ids = [main.latent for main in mains]
    # the build's rule and, for the method band, the other one (sharing SAEBench's fits)
    rule, other_rule = config.k_sparse.rule, config.k_sparse.other_rule
    # every fold's fits stop at the first k the tau rule rejects: the rule reads no further, so the split latents are
    # the same as with all k up to max_k, in a third of the fits (the Letter page's curve ends at that k)
    by_rule = ks.k_sparse_by_rule(sparse, train_codes, labels[train], test_codes, labels[test], config.k_sparse,
                                  False, (rule, other_rule), main_ids)
    splits, other_splits = by_rule[rule], by_rule[other_rule]
    decoder_cos = row_cosines(weights.W_dec, probe.directions())  # [d_sae, n_classes]
    result = []
    for j in range(config.n_classes):
        tp = hook.probe_true_positives(j, fold)
        split = splits[j].split_latents
        tp_codes = codes[tp]  # [n_tp, d_sae], gathered once (CSR rows in a build)
        projection = projection_absorption(hook.acts[tp], tp_codes, probe.weight[j], weights.W_dec, split,
                                           config.projection, weights.decoder_norms)
        other = other_splits[j].split_latents
        other_projection = None if sorted(other) == sorted(split) else projection_absorption(
            hook.acts[tp], tp_codes, probe.weight[j], weights.W_dec, other, config.projection, weights.decoder_norms)
        not_k_sparse = ~ks.k_sparse_decision(splits[j].split_fit, tp_codes)
        split_acts = columns(tp_codes, split)  # [n_tp, n_split]
        silent = split_acts.sum(axis=1) < config.ablation.inactive_eps
        top_acts = gather(tp_codes, projection.top_latents)
        result.append(LetterFold(fold, splits[j], mains[j], tp, projection, split_acts, top_acts,
                                 decoder_cos[:, j], tp[not_k_sparse & silent], paper_weights=np.zeros(len(tp)),
                                 other_split=other_splits[j], other_projection=other_projection))
    return result


def combine_folds(letter: int, folds: list[LetterFold], encoder_cos: np.ndarray, codes: Codes, hook: HookProbeData,
                  best: base.BaselineScore) -> LetterAbsorption:
    split, split_stability = modal([tuple(f.split.split_latents) for f in folds])
    (main_latent,), main_stability = modal([(f.main.latent,) for f in folds])
    measured = hook.measured
    # one column, not codes[measured]: that would copy every measured word's codes once per letter
    main = latent_as_classifier(main_latent, letter, float(encoder_cos[main_latent, letter]),
                                column(codes, main_latent)[measured], hook.prompts.labels[measured],
                                encoder_cos.shape[1])
    return LetterAbsorption(letter, folds, list(split), split_stability, main, main_stability, best)


def compute_sae_absorption(sae_key: str, sae, model: HookedTransformer, hook: HookProbeData, config: AbsorptionConfig,
                           log=print) -> SAEAbsorption:
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    sae = normalized_sae(sae)
    with packed_linears(sae):
        codes = encode_words(sae, hook.acts)  # CSR [n_words, d_sae]: never dense over the latents
    weights = SAEWeights.of(sae)
    directions = hook.probe.directions()  # [26, d_model] display probe
    decoder_cos = row_cosines(weights.W_dec, directions)  # [d_sae, 26]
    encoder_cos = row_cosines(weights.W_enc_rows, directions)  # [d_sae, 26]
    seconds["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    # ~100-500 small scikit-learn fits (thousands of rows, <= 10 columns) and sparse products per fold: BLAS threads
    # only spin between them (2 threads doubled this stage's CPU time for no wall-clock gain)
    with threadpool_limits(1, user_api="blas"):
        by_fold = measure_folds(codes, weights, hook, config)
    labels = hook.prompts.labels
    train0, test0 = hook.training_words(0), hook.fold_words(0)
    best = base.best_active_latent(codes[train0], labels[train0], codes[test0], labels[test0],  # a baseline: one split
                                   config.n_classes)
    letters = [combine_folds(j, [fold[j] for fold in by_fold], encoder_cos, codes, hook, best[j])
               for j in range(config.n_classes)]
    seconds["k_sparse"] = time.perf_counter() - t

    t = time.perf_counter()
    if config.run_ablation_metric:
        with fast_passes(model, sae):
            run_paper_metric(letters, sae, model, hook, codes, config, sae_key)
    seconds["ablation"] = time.perf_counter() - t

    t = time.perf_counter()
    included = [j for j in range(config.n_classes) if hook.test_scores.f1[j] > config.min_probe_f1]
    names = ("fraction", "full", "paper", "other_fraction", "other_full")
    values = {name: {letter.letter: letter.per_fold(name) for letter in letters} for name in names}
    fraction, full, paper, other_fraction, other_full = (fold_and_word_intervals(values[name], included, config.bootstrap)
                                                         for name in names)
    fold_sd = {name: between_fold_sd(values[name], included) for name in ("fraction", "full", "paper")}
    seconds["bootstrap"] = time.perf_counter() - t
    result = SAEAbsorption(sae_key, hook, decoder_cos, encoder_cos, letters, fraction, full, paper, fold_sd, included, seconds,
                           config.k_sparse.rule, config.k_sparse.other_rule, other_fraction, other_full)
    log(f"{sae_key}: mean absorption fraction {fraction[1].value:.3f} [{fraction[1].low:.3f}, {fraction[1].high:.3f}] "
        f"(between folds SD {fold_sd['fraction']:.3f}), full-absorption rate {full[1].value:.3f}, paper absorption rate "
        f"{paper[1].value:.3f} over {len(included)} {config.task} classes ({config.split_mode}, {config.fold_count} fold(s)); split "
        f"latents change between folds for {len(result.unstable_letters)} letters; {config.k_sparse.other_rule} rule "
        f"{other_fraction[1].value:.3f} (other split latents for {len(result.rule_changed_letters)} classes); "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))
    return result
