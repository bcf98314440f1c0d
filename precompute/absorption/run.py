"""The absorption precompute: shared per-hook work (prompts, activations, probe, model check,
baselines) computed once and reused by every SAE at that hook; then the per-SAE work (codes, probe
cosines, k-sparse probing, split and main latents, both absorption metrics, intervals)."""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from contract.vocabulary import MIN_PROBE_F1
from precompute.absorption import ablation as abl
from precompute.absorption import baselines as base
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.activations import answer_logits, word_activations
from precompute.absorption.codes import Codes, as_csr, column, columns, encode_words, gather
from precompute.absorption.projection import ProjectionMetricConfig, ProjectionResult, projection_absorption
from precompute.absorption.prompts import PromptSet, build_prompt_set, letter_token_ids
from precompute.absorption.stats import BootstrapConfig, Interval, between_fold_sd, fold_and_word_intervals
from precompute.absorption.tasks import FIRST_LETTER, get_task
from precompute.absorption.vocab import PromptConfig, prompt_config_for, split_words, task_vocabulary
from precompute.util.blocks import row_blocks

SPLIT_MODES = ("crossfit", "holdout")
TRAINING_ONLY = -1  # fold of a holdout-mode probe-training word: never measured


@dataclass(frozen=True)
class AbsorptionConfig:
    """Every default of both reference metrics, plus how we run them. See
    ../shared/reference/absorption-metrics.md for the definitions."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    probe: pr.ProbeConfig = field(default_factory=pr.ProbeConfig)
    sparse_probe: pr.SparseProbeConfig = field(default_factory=pr.SparseProbeConfig)
    k_sparse: ks.KSparseConfig = field(default_factory=ks.KSparseConfig)
    projection: ProjectionMetricConfig = field(default_factory=ProjectionMetricConfig)
    ablation: abl.AblationMetricConfig = field(default_factory=abl.AblationMetricConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    max_words: int | None = None  # None: the whole alphabetic vocabulary (as SAEBench); else a seeded subset
    share_prefix: bool = True  # one sampled in-context prefix per group of words, its keys/values cached
    prefix_group_size: int = 512  # words per shared prefix (share_prefix only)
    batch_size: int = 128  # words per model call
    model_check_per_letter: int = 50  # test words per letter on which the model's own answer is checked
    min_probe_f1: float = MIN_PROBE_F1  # letters with probe F1 <= this are left out of the headline means (SAEBench)
    run_ablation_metric: bool = True  # the paper's metric needs gradients through the model (slowest part)
    # "crossfit": the words fall into n_folds seeded folds; each fold is measured against a probe (and split
    # latents) fitted on the other folds, so every word of the vocabulary gets an out-of-fold verdict.
    # "holdout": SAEBench's protocol, one probe on 1 - test_fraction of the words, the rest measured.
    split_mode: str = "crossfit"
    n_folds: int = 5
    # the task (precompute/absorption/tasks.py) whose classes are measured; `prompts` asks for its classes
    # (config_for_task sets both)
    task: str = FIRST_LETTER.name

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if (self.prompts.classes, self.prompts.answers) != (task.classes, task.answers):
            raise ValueError(f"prompts ask for other classes than task {self.task!r}: use config_for_task")
        if self.split_mode not in SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}, not {self.split_mode!r}")
        if self.split_mode == "crossfit" and self.n_folds < 2:
            raise ValueError("crossfit needs n_folds >= 2")

    @property
    def n_classes(self) -> int:
        return len(self.prompts.classes)

    @property
    def fold_count(self) -> int:
        """Folds that are measured: n_folds, or the one held-out fold."""
        return self.n_folds if self.split_mode == "crossfit" else 1


def config_for_task(config: AbsorptionConfig, task_name: str) -> AbsorptionConfig:
    """`config` measuring `task_name`: its classes, answers and prompt template, every other setting kept."""
    from dataclasses import replace

    task = get_task(task_name)
    return replace(config, task=task.name, prompts=prompt_config_for(task, config.prompts))


@dataclass
class HookProbeData:
    """Everything shared by the SAEs at one hook."""
    model_name: str
    hook_name: str
    layer: int
    prompts: PromptSet
    acts: np.ndarray  # [n, d_model] at the word position
    folds: np.ndarray  # [n] the fold a word is measured in (its probe never saw it), or TRAINING_ONLY
    fold_probes: list[pr.LinearProbe]  # one per measured fold, fitted on the words of the other folds
    probe: pr.LinearProbe  # for display (decoder cosines): fitted on every word (crossfit) or the holdout probe
    probe_logits: np.ndarray  # [n, 26] out-of-fold (each measured word by its fold's probe)
    test_scores: pr.ClassifierScores
    aucs: np.ndarray  # [26]
    stability: np.ndarray  # [26]
    model_accuracy: np.ndarray  # [26] the model's own first-letter accuracy on checked test words
    model_checked: np.ndarray  # [26] words checked per letter
    model_correct: dict[int, bool]  # word index -> the model answered its letter
    neuron_baseline: list[base.BaselineScore]
    pca_baseline: list[base.BaselineScore]
    letter_ids: list[int]
    seconds: dict[str, float]

    @property
    def measured(self) -> np.ndarray:
        """Words with an out-of-fold verdict: every word (crossfit) or the held-out test words."""
        return np.flatnonzero(self.folds != TRAINING_ONLY)

    def fold_words(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.folds == fold)

    def training_words(self, fold: int) -> np.ndarray:
        """The words fold `fold`'s probe (and split latents) are fitted on."""
        return fold_training_words(self.folds, fold)

    def probe_true_positives(self, letter: int, fold: int | None = None) -> np.ndarray:
        """Measured words of this letter (of one fold, or all) that their out-of-fold probe classifies
        correctly: where absorption is measured."""
        words = self.measured if fold is None else self.fold_words(fold)
        return words[(self.prompts.labels[words] == letter) & (self.probe_logits[words, letter] > 0)]


def select_words(tokenizer, config: AbsorptionConfig):
    """(probe-train, measured) word pools: the 80/20 split (holdout) or every word in one pool (crossfit,
    whose folds are assigned after the prompts are built)."""
    words = task_vocabulary(tokenizer, get_task(config.task))
    if config.max_words is not None and config.max_words < len(words):
        words = random.Random(config.prompts.seed).sample(words, config.max_words)
    if config.split_mode == "crossfit":
        shuffled = list(words)
        random.Random(config.prompts.seed).shuffle(shuffled)
        return [], shuffled
    return split_words(words, config.prompts)


def assign_folds(prompts: PromptSet, config: AbsorptionConfig) -> np.ndarray:
    """[n] fold per word: seeded and balanced per letter (each letter's words dealt round-robin in a
    seeded order), so every fold's probe sees every letter; TRAINING_ONLY for holdout training words."""
    if config.split_mode == "holdout":
        return np.where(prompts.is_test, 0, TRAINING_ONLY)
    rng = np.random.default_rng(config.prompts.seed)
    folds = np.empty(len(prompts), dtype=np.int64)
    for letter in range(config.n_classes):
        members = rng.permutation(np.flatnonzero(prompts.labels == letter))
        folds[members] = (np.arange(len(members)) + letter) % config.n_folds
    return folds


def fold_training_words(folds: np.ndarray, fold: int) -> np.ndarray:
    """Holdout: the training-only words. Crossfit: every word of the other folds."""
    if (folds == TRAINING_ONLY).any():
        return np.flatnonzero(folds == TRAINING_ONLY)
    return np.flatnonzero(folds != fold)


def out_of_fold_logits(acts: np.ndarray, folds: np.ndarray, fold_probes: list[pr.LinearProbe],
                       display_probe: pr.LinearProbe) -> np.ndarray:
    """[n, 26]: each measured word scored by its own fold's probe; holdout training words by the probe
    they trained (in-sample, shown but never measured)."""
    logits = display_probe.logits(acts)
    for fold, probe in enumerate(fold_probes):
        words = np.flatnonzero(folds == fold)
        logits[words] = probe.logits(acts[words])
    return logits


def model_check(model: HookedTransformer, prompts: PromptSet, folds: np.ndarray, letter_ids: list[int],
                config: AbsorptionConfig):
    """The model's own answer (argmax over " A".." Z") on up to model_check_per_letter measured words a letter,
    taken from few prefix groups (a cluster sample: the words of a group are random) so few prefixes run."""
    rng = np.random.default_rng(config.prompts.seed)
    rank = prefix_order(prompts, config.ablation.seed)  # the ablation metric's order: their prefixes overlap
    chosen = []
    for letter in range(config.n_classes):
        members = np.flatnonzero((folds != TRAINING_ONLY) & (prompts.labels == letter))
        chosen.extend(prefix_clustered_sample(members, prompts, rank, config.model_check_per_letter, rng).tolist())
    chosen = np.array(sorted(chosen), dtype=np.int64)
    logits = answer_logits(model, prompts, chosen, letter_ids, batch_size=max(1, config.batch_size // 2))
    correct = logits.argmax(axis=1) == prompts.labels[chosen]
    checked = np.bincount(prompts.labels[chosen], minlength=config.n_classes)
    accuracy = np.bincount(prompts.labels[chosen], weights=correct, minlength=config.n_classes) / np.maximum(checked, 1)
    return accuracy, checked, {int(i): bool(c) for i, c in zip(chosen, correct)}


@dataclass
class StoredProbes:
    """A probe run already in the database for the same config: its display probe and fold probes."""
    probe: pr.LinearProbe
    fold_probes: list[pr.LinearProbe]


def train_fold_probes(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray, config: AbsorptionConfig) -> list[pr.LinearProbe]:
    return [pr.train_letter_probe(acts[idx], labels[idx], config.probe, config.n_classes)
            for idx in (fold_training_words(folds, fold) for fold in range(config.fold_count))]


def display_probe(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray, fold_probes: list[pr.LinearProbe],
                  config: AbsorptionConfig) -> pr.LinearProbe:
    """Holdout: its one probe. Crossfit: a probe on every word, for what has no fold (decoder cosines on the
    Letter and Latent pages); no measured number uses it."""
    if config.split_mode == "holdout":
        return fold_probes[0]
    return pr.train_letter_probe(acts, labels, config.probe, config.n_classes)


def compute_hook_data(model: HookedTransformer, model_name: str, hook_name: str, layer: int,
                      config: AbsorptionConfig, stored: StoredProbes | None = None, log=print) -> HookProbeData:
    """The shared work at one hook. With `stored` (the probes already in the database for the same config),
    the probes are reused instead of retrained, so every SAE at the hook is measured against the same
    directions; the per-hook tables are then not rewritten and their extras are skipped."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    tokenizer = model.tokenizer
    train_words, measured_words = select_words(tokenizer, config)
    bos = tokenizer.bos_token_id if model.cfg.default_prepend_bos else None
    prompts = build_prompt_set(tokenizer, train_words, measured_words, config.prompts, config.share_prefix,
                               config.prefix_group_size, bos)
    folds = assign_folds(prompts, config)
    letter_ids = letter_token_ids(tokenizer, config.prompts)
    seconds["prompts"] = time.perf_counter() - t
    log(f"{hook_name}: {len(prompts)} words ({(folds != TRAINING_ONLY).sum()} measured in {config.fold_count} "
        f"fold(s), {config.split_mode}; {prompts.n_dropped} dropped), {len(prompts.prefixes)} prefixes")

    t = time.perf_counter()
    acts = word_activations(model, prompts, hook_name, layer, batch_size=config.batch_size)
    seconds["activations"] = time.perf_counter() - t

    t = time.perf_counter()
    labels = prompts.labels
    if stored is not None:
        fold_probes, probe = stored.fold_probes, stored.probe
    else:
        fold_probes = train_fold_probes(acts, labels, folds, config)
        probe = display_probe(acts, labels, folds, fold_probes, config)
    logits = out_of_fold_logits(acts, folds, fold_probes, probe)
    measured = np.flatnonzero(folds != TRAINING_ONLY)
    test_scores = pr.classifier_scores(logits[measured] > 0, labels[measured])
    aucs = pr.letter_aucs(logits[measured], labels[measured])
    seconds["probe"] = time.perf_counter() - t
    common = dict(model_name=model_name, hook_name=hook_name, layer=layer, prompts=prompts, acts=acts, folds=folds,
                  fold_probes=fold_probes, probe=probe, probe_logits=logits, test_scores=test_scores, aucs=aucs,
                  letter_ids=letter_ids, seconds=seconds)
    if stored is not None:
        n = config.n_classes
        return HookProbeData(**common, stability=np.full(n, np.nan), model_accuracy=np.zeros(n),
                             model_checked=np.zeros(n, dtype=np.int64), model_correct={}, neuron_baseline=[],
                             pca_baseline=[])
    t = time.perf_counter()
    train = fold_training_words(folds, 0)
    stability = pr.probe_stability(acts[train], labels[train], config.probe, config.n_classes)
    seconds["probe_stability"] = time.perf_counter() - t

    t = time.perf_counter()
    accuracy, checked, correct = model_check(model, prompts, folds, letter_ids, config)
    seconds["model_check"] = time.perf_counter() - t

    t = time.perf_counter()
    # one split is enough for a baseline: fold 0's words against the words its probe was trained on
    test = np.flatnonzero(folds == 0)
    neuron = base.best_direction_baseline("neuron", acts[train], labels[train], acts[test], labels[test],
                                          n_classes=config.n_classes)
    pca_train, pca_test = base.pca_projections(acts[train], acts[test])
    pca = base.best_direction_baseline("pca", pca_train, labels[train], pca_test, labels[test],
                                       n_classes=config.n_classes)
    seconds["baselines"] = time.perf_counter() - t
    return HookProbeData(**common, stability=stability, model_accuracy=accuracy, model_checked=checked,
                         model_correct=correct, neuron_baseline=neuron, pca_baseline=pca)


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
                "paper": lambda f: f.paper_weights if f.paper_weights is not None else np.zeros(len(f.true_positives))}
        return [pick[name](f) for f in self.folds]

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
    # the full F1-vs-k curve for fold 0 (shown on the Letter page); the other folds stop where the tau rule does
    splits = ks.k_sparse_probing(sparse, train_codes, labels[train], test_codes, labels[test], config.k_sparse,
                                 full_curve=fold == 0)
    mains = ks.main_latents(row_cosines(weights.W_enc_rows, probe.directions()), test_codes, labels[test])
    decoder_cos = row_cosines(weights.W_dec, probe.directions())  # [d_sae, n_classes]
    result = []
    for j in range(config.n_classes):
        tp = hook.probe_true_positives(j, fold)
        split = splits[j].split_latents
        tp_codes = codes[tp]  # [n_tp, d_sae], gathered once (CSR rows in a build)
        projection = projection_absorption(hook.acts[tp], tp_codes, probe.weight[j], weights.W_dec, split,
                                           config.projection, weights.decoder_norms)
        not_k_sparse = ~ks.k_sparse_decision(splits[j].split_fit, tp_codes)
        split_acts = columns(tp_codes, split)  # [n_tp, n_split]
        silent = split_acts.sum(axis=1) < config.ablation.inactive_eps
        top_acts = gather(tp_codes, projection.top_latents)
        result.append(LetterFold(fold, splits[j], mains[j], tp, projection, split_acts, top_acts,
                                 decoder_cos[:, j], tp[not_k_sparse & silent], paper_weights=np.zeros(len(tp))))
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
    codes = encode_words(sae, hook.acts)  # CSR [n_words, d_sae]: never dense over the latents
    weights = SAEWeights.of(sae)
    directions = hook.probe.directions()  # [26, d_model] display probe
    decoder_cos = row_cosines(weights.W_dec, directions)  # [d_sae, 26]
    encoder_cos = row_cosines(weights.W_enc_rows, directions)  # [d_sae, 26]
    seconds["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    by_fold = [measure_fold(fold, codes, weights, hook, config) for fold in range(config.fold_count)]
    labels = hook.prompts.labels
    train0, test0 = hook.training_words(0), hook.fold_words(0)
    best = base.best_active_latent(codes[train0], labels[train0], codes[test0], labels[test0],  # a baseline: one split
                                   config.n_classes)
    letters = [combine_folds(j, [fold[j] for fold in by_fold], encoder_cos, codes, hook, best[j])
               for j in range(config.n_classes)]
    seconds["k_sparse"] = time.perf_counter() - t

    t = time.perf_counter()
    if config.run_ablation_metric:
        run_paper_metric(letters, sae, model, hook, codes, config, sae_key)
    seconds["ablation"] = time.perf_counter() - t

    t = time.perf_counter()
    included = [j for j in range(config.n_classes) if hook.test_scores.f1[j] > config.min_probe_f1]
    values = {name: {letter.letter: letter.per_fold(name) for letter in letters} for name in ("fraction", "full", "paper")}
    fraction, full, paper = (fold_and_word_intervals(values[name], included, config.bootstrap)
                             for name in ("fraction", "full", "paper"))
    fold_sd = {name: between_fold_sd(values[name], included) for name in values}
    seconds["bootstrap"] = time.perf_counter() - t
    result = SAEAbsorption(sae_key, hook, decoder_cos, encoder_cos, letters, fraction, full, paper, fold_sd, included, seconds)
    log(f"{sae_key}: mean absorption fraction {fraction[1].value:.3f} [{fraction[1].low:.3f}, {fraction[1].high:.3f}] "
        f"(between folds SD {fold_sd['fraction']:.3f}), full-absorption rate {full[1].value:.3f}, paper absorption rate "
        f"{paper[1].value:.3f} over {len(included)} {config.task} classes ({config.split_mode}, {config.fold_count} fold(s)); split "
        f"latents change between folds for {len(result.unstable_letters)} letters; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))
    return result


def prefix_order(prompts: PromptSet, seed: int) -> np.ndarray:
    """[n_prefixes] a seeded rank per prefix group. Words fall into prefix groups at random (groups are
    consecutive chunks of a shuffled word list), so taking whole groups in this order is a cluster sample of
    the words; sharing the order between letters (and with the model check) makes their samples share
    prefixes, and each prefix's keys/values are computed once for all of them."""
    return np.random.default_rng(seed).permutation(len(prompts.prefixes))


def prefix_clustered_sample(pool: np.ndarray, prompts: PromptSet, rank: np.ndarray, size: int,
                            rng: np.random.Generator) -> np.ndarray:
    """At most `size` of `pool` (word indices): whole prefix groups in `rank` order, the last one cut at
    random."""
    shuffled = rng.permutation(pool)
    order = np.argsort(rank[prompts.prefix_index[shuffled]], kind="stable")
    return shuffled[order][:size]


def sample_paper_candidates(letter: LetterAbsorption, prompts: PromptSet, rank: np.ndarray,
                            cfg: abl.AblationMetricConfig) -> float:
    """Chooses each fold's `sampled` words: at most max_candidates of the letter's candidates pooled over
    folds. Returns the sampled portion of the pool (the weight of a sampled word is 1 / portion)."""
    pool = np.concatenate([f.candidates for f in letter.folds])
    chosen = set(prefix_clustered_sample(pool, prompts, rank, cfg.max_candidates,
                                         np.random.default_rng(cfg.seed + letter.letter)).tolist())
    for fold in letter.folds:
        fold.sampled = np.array(sorted(int(w) for w in fold.candidates if int(w) in chosen), dtype=np.int64)
    return len(chosen) / len(pool) if len(pool) else 1.0


def run_paper_metric(letters: list[LetterAbsorption], sae, model: HookedTransformer, hook: HookProbeData,
                     codes: Codes, config: AbsorptionConfig, sae_key: str = "") -> None:
    """The paper's ablation metric on at most max_candidates of each letter's candidates (pooled over folds);
    each sampled word is judged with its own fold's split latents and probe. All letters' words run
    together, batched by shared prefix (the attribution of a word does not depend on its letter, only the
    metric's correct answer does)."""
    cfg = config.ablation
    rank = prefix_order(hook.prompts, cfg.seed)
    portions = [sample_paper_candidates(letter, hook.prompts, rank, cfg) for letter in letters]
    words = np.concatenate([f.sampled for letter in letters for f in letter.folds] + [np.array([], dtype=np.int64)])
    answers = np.concatenate([np.full(len(f.sampled), letter.letter) for letter in letters for f in letter.folds]
                             + [np.array([], dtype=np.int64)])
    top_latents, top_values = word_attributions(words, answers, sae, model, hook, cfg, desc=f"{sae_key} ablation metric")
    start = 0
    for letter, portion in zip(letters, portions):
        for fold in letter.folds:
            rows = slice(start, start + len(fold.sampled))
            start += len(fold.sampled)
            fold.paper = abl.paper_absorption_from_top(top_latents[rows], top_values[rows], codes[fold.sampled],
                                                       fold.split.split_latents, fold.decoder_cos, cfg)
            position = {int(w): n for n, w in enumerate(fold.true_positives)}
            for row, word in enumerate(fold.sampled):
                fold.paper_weights[position[int(word)]] = float(fold.paper.is_absorption[row]) / portion


def word_attributions(words: np.ndarray, answers: np.ndarray, sae, model: HookedTransformer, hook: HookProbeData,
                      cfg: abl.AblationMetricConfig, desc: str = "ablation metric") -> tuple[np.ndarray, np.ndarray]:
    """Each word's top_k_latents latents by attribution to its letter metric (answers [len(words)]: the letter
    index), most negative first: (latents [len(words), k], attributions [len(words), k]). Words run batched by
    shared prefix; each batch's [batch, d_sae] attributions are cut to their top k at once."""
    prompts = hook.prompts
    k = min(cfg.top_k_latents, sae.W_dec.shape[0])
    top_latents = np.zeros((len(words), k), dtype=np.int64)
    top_values = np.zeros((len(words), k), dtype=np.float32)
    by_prefix: dict[int, list[int]] = {}
    for row, i in enumerate(words):
        by_prefix.setdefault(int(prompts.prefix_index[i]), []).append(row)
    chunks = [(prefix_id, rows[start : start + cfg.batch_size]) for prefix_id, rows in by_prefix.items()
              for start in range(0, len(rows), cfg.batch_size)]
    for prefix_id, chunk in tqdm(chunks, desc=desc, disable=not chunks):
        suffixes = torch.tensor([[prompts.words[i].token_id] + prompts.tail_ids for i in words[chunk]])
        correct = torch.as_tensor(answers[chunk], dtype=torch.long)
        attributions, _ = abl.ablation_attributions(model, sae, hook.hook_name, prompts.prefixes[prefix_id],
                                                    suffixes, correct, hook.letter_ids, cfg)  # [batch, d_sae]
        top_latents[chunk], top_values[chunk] = abl.top_attributions(attributions, k)
    return top_latents, top_values

