"""Absorption results as rows of the tables in contract/sql/schema.sql."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from contract.rows import (
    AbsorptionSplitActRow,
    AbsorptionWordRow,
    ClassProbeRow,
    ProbeFoldRow,
    ProbeRunRow,
    SaeAbsorptionRow,
    SaeClassFoldRow,
    SaeClassKRow,
    SaeClassRow,
    arrow_table,
)
from contract.schema import COS_BLOCK, COS_SCALE
from precompute.absorption import probe as pr
from precompute.absorption.config import TRAINING_ONLY, AbsorptionConfig
from precompute.absorption.hook import HookProbeData
from precompute.absorption.measure import SAEAbsorption
from precompute.absorption.projection import absorbing_latent


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def config_json(config: AbsorptionConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)


def probe_run_id(hook: HookProbeData, config: AbsorptionConfig) -> str:
    """The id of a probe run: a hash of its config, its words with their split and prefix, and the probe
    weights it produced. Two runs share an id only if every per-SAE number would be measured alike."""
    digest = hashlib.sha256(config_json(config).encode())
    digest.update(hook.model_name.encode() + b"\0" + hook.hook_name.encode() + b"\0")
    prompts = hook.prompts
    digest.update(np.array([w.token_id for w in prompts.words], dtype=np.int64).tobytes())
    digest.update(np.asarray(hook.folds, dtype=np.int64).tobytes())
    digest.update(np.asarray(prompts.prefix_index, dtype=np.int64).tobytes())
    for probe in [hook.probe, *hook.fold_probes]:
        digest.update(np.ascontiguousarray(probe.weight, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(probe.bias, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def r(value: float, decimals: int = 4) -> float | None:
    """Rounded display value; NaN becomes NULL."""
    return None if value is None or not np.isfinite(value) else round(float(value), decimals)


def sign_keeping_round(values: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded, except that a positive value never rounds to 0: `probe_logit > 0` (the probe gets the word right)
    must read the same from the table as it did in the run."""
    rounded = np.round(values, decimals)
    return np.where((values > 0) & (rounded <= 0), 10.0 ** -decimals, rounded)


def float_list(values, decimals: int = 4) -> list[float]:
    return [round(float(v), decimals) for v in values]


def hook_tables(hook: HookProbeData, config: AbsorptionConfig, tokenizer, run_id: str) -> dict[str, pa.Table]:
    prompts = hook.prompts
    measured = hook.folds != TRAINING_ONLY
    run = ProbeRunRow(
        probe_run_id=run_id, model_name=hook.model_name, hook_name=hook.hook_name, task=config.task,
        config=config_json(config), split_mode=config.split_mode, n_folds=config.fold_count,
        n_words=len(prompts), n_train=int((~measured).sum()), n_test=int(measured.sum()),
        n_dropped=prompts.n_dropped, prompt_template=config.prompts.template,
        seconds=json.dumps({k: round(v, 2) for k, v in hook.seconds.items()}), created_at=now(),
    )
    labels = prompts.labels
    fold_direction_cos = lowest_pairwise_cos([p.directions() for p in hook.fold_probes], config.n_classes)
    classes = config.prompts.classes
    letters = []
    for j, letter in enumerate(classes):
        neuron, pca = hook.neuron_baseline[j], hook.pca_baseline[j]
        letters.append(ClassProbeRow(
            probe_run_id=run_id, model_name=hook.model_name, hook_name=hook.hook_name, task=config.task,
            letter=letter, weight=float_list(hook.probe.weight[j], pr.PROBE_DECIMALS), bias=float(hook.probe.bias[j]),
            n_train=int(((labels == j) & ~measured).sum()), n_test=int(((labels == j) & measured).sum()),
            probe_precision=float(hook.test_scores.precision[j]), probe_recall=float(hook.test_scores.recall[j]),
            probe_f1=float(hook.test_scores.f1[j]), probe_auc=r(hook.aucs[j]),
            probe_stability=float(hook.stability[j]), fold_direction_cos=r(fold_direction_cos[j]),
            n_probe_true_positives=int(len(hook.probe_true_positives(j))),
            model_accuracy=float(hook.model_accuracy[j]), model_checked=int(hook.model_checked[j]),
            neuron=neuron.index, neuron_sign=neuron.sign, neuron_precision=neuron.precision,
            neuron_recall=neuron.recall, neuron_f1=neuron.f1,
            pca_component=pca.index, pca_sign=pca.sign, pca_precision=pca.precision,
            pca_recall=pca.recall, pca_f1=pca.f1,
        ))
    own_logits = hook.probe_logits[np.arange(len(prompts)), labels]
    words = pa.table({
        "probe_run_id": [run_id] * len(prompts), "token_id": pa.array([w.token_id for w in prompts.words], pa.int32()),
        "letter": [classes[j] for j in labels], "is_test": measured,
        "fold": pa.array([None if f == TRAINING_ONLY else int(f) for f in hook.folds], pa.int16()),
        "prefix_id": pa.array(prompts.prefix_index, pa.int32()),
        "probe_logit": pa.array(sign_keeping_round(own_logits, 3), pa.float32()),
        "model_correct": pa.array([hook.model_correct.get(i) for i in range(len(prompts))], pa.bool_()),
    })
    prefixes = pa.table({
        "probe_run_id": [run_id] * len(prompts.prefixes), "model_name": [hook.model_name] * len(prompts.prefixes), "hook_name": [hook.hook_name] * len(prompts.prefixes),
        "prefix_id": pa.array(range(len(prompts.prefixes)), pa.int32()),
        "text": [tokenizer.decode(ids, skip_special_tokens=False) for ids in prompts.prefixes],
    })
    folds = [ProbeFoldRow(probe_run_id=run_id, task=config.task, fold=fold, letter=letter,
                          weight=float_list(probe.weight[j], pr.PROBE_DECIMALS), bias=float(probe.bias[j]),
                          n_words=int(((labels == j) & (hook.folds == fold)).sum()),
                          n_probe_true_positives=int(len(hook.probe_true_positives(j, fold))))
             for fold, probe in enumerate(hook.fold_probes) for j, letter in enumerate(classes)]
    return {"probe_runs": arrow_table([run], ProbeRunRow), "letter_probes": arrow_table(letters, ClassProbeRow),
            "probe_folds": arrow_table(folds, ProbeFoldRow), "probe_words": words, "probe_prefixes": prefixes}


def lowest_pairwise_cos(directions: list[np.ndarray], n_classes: int) -> np.ndarray:
    """[n_classes] the lowest cosine between any two folds' unit probe directions (NaN with one fold)."""
    if len(directions) < 2:
        return np.full(n_classes, np.nan)
    return np.min([(a * b).sum(axis=1) for i, a in enumerate(directions) for b in directions[i + 1:]], axis=0)


def sae_tables(result: SAEAbsorption, config: AbsorptionConfig, run_id: str) -> dict[str, pa.Table]:
    """One SAE's rows for one task; every row names the task and the probe run it was measured against."""
    key, hook = result.sae_key, result.hook
    fraction_by_letter, fraction = result.fraction
    full_by_letter, full = result.full
    paper_by_letter, paper = result.paper_rate
    other_fraction_by_letter, other_fraction = result.other_fraction
    other_full_by_letter, other_full = result.other_full
    included = result.included_letters
    ablation = config.run_ablation_metric
    ids = {"sae_key": key, "task": config.task, "probe_run_id": run_id}  # every row's first three fields

    def spread(values: list[float]) -> float | None:
        return r(float(np.std(values, ddof=1))) if len(values) > 1 else None

    n_split = [len(result.letters[j].split_latents) for j in included]
    summary = SaeAbsorptionRow(
        **ids, hook_name=hook.hook_name, n_letters=len(included),
        mean_absorption_fraction=r(fraction.value), mean_absorption_fraction_low=r(fraction.low),
        mean_absorption_fraction_high=r(fraction.high),
        std_absorption_fraction=spread([fraction_by_letter[j].value for j in included]),
        full_absorption_rate=r(full.value), full_absorption_rate_low=r(full.low), full_absorption_rate_high=r(full.high),
        std_full_absorption=spread([full_by_letter[j].value for j in included]),
        paper_absorption_rate=r(paper.value) if ablation else None,
        paper_absorption_rate_low=r(paper.low) if ablation else None,
        paper_absorption_rate_high=r(paper.high) if ablation else None,
        std_paper_absorption=spread([paper_by_letter[j].value for j in included]) if ablation else None,
        mean_num_split_latents=r(float(np.mean(n_split))) if n_split else None, std_num_split_latents=spread(n_split),
        mean_main_precision=r(np.mean([result.letters[j].main.precision for j in included])) if included else None,
        mean_main_recall=r(np.mean([result.letters[j].main.recall for j in included])) if included else None,
        mean_main_f1=r(np.mean([result.letters[j].main.f1 for j in included])) if included else None,
        mean_probe_f1=r(np.mean([hook.test_scores.f1[j] for j in included])) if included else None,
        split_mode=config.split_mode, n_folds=config.fold_count,
        fold_sd_absorption_fraction=r(result.fold_sd["fraction"]), fold_sd_full_absorption=r(result.fold_sd["full"]),
        fold_sd_paper_absorption=r(result.fold_sd["paper"]) if ablation else None,
        n_unstable_letters=len(result.unstable_letters),
        split_rule=result.split_rule, other_rule=result.other_rule,
        other_absorption_fraction=r(other_fraction.value), other_absorption_fraction_low=r(other_fraction.low),
        other_absorption_fraction_high=r(other_fraction.high),
        other_full_absorption_rate=r(other_full.value), other_full_absorption_rate_low=r(other_full.low),
        other_full_absorption_rate_high=r(other_full.high),
        n_rule_changed_letters=len(result.rule_changed_letters),
        n_main_outside_split=len(result.main_outside_split_letters),
        config=config_json(config), seconds=json.dumps({k: round(v, 2) for k, v in result.seconds.items()}),
        created_at=now(),
    )
    letters, fold_rows, ks_rows = [], [], []
    for letter in result.letters:
        j, name = letter.letter, config.prompts.classes[letter.letter]
        has_paper = letter.has_paper
        differs = letter.rules_disagree
        letters.append(SaeClassRow(
            **ids, letter=name, included=j in included,
            split_latents=letter.split_latents, n_split=len(letter.split_latents),
            split_stability=letter.split_stability,
            main_latent=letter.main.latent, main_encoder_cos=letter.main.encoder_cos,
            main_stability=letter.main_stability,
            main_precision=letter.main.precision, main_recall=letter.main.recall, main_f1=letter.main.f1,
            main_in_split=letter.main_in_split, best_latent=letter.best_latent.index, best_precision=letter.best_latent.precision,
            best_recall=letter.best_latent.recall, best_f1=letter.best_latent.f1,
            n_probe_true_positives=len(letter.true_positives),
            mean_absorption_fraction=r(fraction_by_letter[j].value), absorption_fraction_low=r(fraction_by_letter[j].low),
            absorption_fraction_high=r(fraction_by_letter[j].high),
            full_absorption_rate=r(full_by_letter[j].value), full_absorption_rate_low=r(full_by_letter[j].low),
            full_absorption_rate_high=r(full_by_letter[j].high),
            n_full_absorption=letter.n_full_absorption,
            paper_absorption_rate=r(paper_by_letter[j].value) if has_paper else None,
            paper_absorption_rate_low=r(paper_by_letter[j].low) if has_paper else None,
            paper_absorption_rate_high=r(paper_by_letter[j].high) if has_paper else None,
            n_candidates=letter.n_candidates, n_sampled=letter.n_sampled, n_paper_absorption=letter.n_paper_absorption,
            other_split_latents=letter.other_split_latents if differs else None,
            other_absorption_fraction=r(other_fraction_by_letter[j].value) if differs else None,
            other_full_absorption_rate=r(other_full_by_letter[j].value) if differs else None,
        ))
        for fold in letter.folds:
            tp = len(fold.true_positives)
            fold_rows.append(SaeClassFoldRow(
                **ids, letter=name, fold=fold.fold, split_latents=fold.split.split_latents,
                main_latent=fold.main.latent, main_f1=fold.main.f1, n_probe_true_positives=tp,
                mean_absorption_fraction=r(fold.projection.absorption_fraction.mean()) if tp else None,
                full_absorption_rate=r(fold.projection.is_full_absorption.mean()) if tp else None,
                paper_absorption_rate=r(fold.paper_weights.mean()) if fold.paper is not None and tp else None,
                n_candidates=len(fold.candidates), n_sampled=len(fold.sampled),
                other_split_latents=fold.other_split.split_latents if fold.other_projection is not None else None,
            ))
            for fit in fold.split.fits:
                ks_rows.append(SaeClassKRow(**ids, letter=name, fold=fold.fold, k=fit.k, latents=fit.latents,
                                            weights=float_list(fit.weights), bias=fit.bias,
                                            precision=round(fit.precision, K_STAT_DECIMALS),
                                            recall=round(fit.recall, K_STAT_DECIMALS), f1=round(fit.f1, K_STAT_DECIMALS)))
    cos = letter_cos_table(key, result.decoder_cos, result.encoder_cos)
    cos = (cos.add_column(1, "task", pa.array([config.task] * len(cos), pa.string()))
           .add_column(2, "probe_run_id", pa.array([run_id] * len(cos), pa.string())))
    return {"sae_absorption": arrow_table([summary], SaeAbsorptionRow), "sae_letters": arrow_table(letters, SaeClassRow),
            "sae_letter_folds": arrow_table(fold_rows, SaeClassFoldRow), "sae_letter_k": arrow_table(ks_rows, SaeClassKRow),
            "latent_letter_cos": cos, **word_tables(result, config.prompts.classes, ids)}


def letter_cos_table(key: str, decoder_cos: np.ndarray, encoder_cos: np.ndarray) -> pa.Table:
    """latent_letter_cos rows: decoder_cos, encoder_cos [d_sae, n_classes] -> a row per class and block of COS_BLOCK
    latents, two SMALLINT lists of the cosines in steps of 1 / COS_SCALE."""
    d_sae, n_classes = decoder_cos.shape
    starts = np.arange(0, d_sae, COS_BLOCK)
    class_index = np.repeat(np.arange(1, n_classes + 1), len(starts))  # rows: class-major, then block
    first_latent = np.tile(starts, n_classes)
    offsets = np.r_[0, np.cumsum(np.minimum(first_latent + COS_BLOCK, d_sae) - first_latent)].astype(np.int32)
    as_thousandths = lambda cos: pa.ListArray.from_arrays(  # noqa: E731
        pa.array(offsets, pa.int32()), pa.array(np.round(cos.T.reshape(-1) * COS_SCALE).astype(np.int16), pa.int16()))
    return pa.table({"sae_key": [key] * len(class_index), "class_index": pa.array(class_index, pa.uint16()),
                     "first_latent": pa.array(first_latent, pa.int32()),
                     "decoder_cos": as_thousandths(decoder_cos), "encoder_cos": as_thousandths(encoder_cos)})


def rounded_absorber(top_latents: np.ndarray, top_acts: np.ndarray, top_scores: np.ndarray,
                     split_latents: list[int]) -> tuple[int | None, float | None, float | None]:
    """The word's absorber (projection.absorbing_latent, the metric's own rule) with its activation and score
    rounded as stored."""
    at = absorbing_latent(top_latents, split_latents)
    if at is None:
        return None, None, None
    return int(top_latents[at]), round(float(top_acts[at]), 3), round(float(top_scores[at]), 3)


# k-sparse probes' precision, recall and F1: exact short decimals compress to a third in DuckDB (ALP), and the pages
# show 2 or 3 decimals
K_STAT_DECIMALS = 4


def word_tables(result: SAEAbsorption, classes: tuple[str, ...], ids: dict[str, str]) -> dict[str, pa.Table]:
    """absorption_words: projection rows for the words with any absorption (about 1 in 4 probe true positives; a
    cross-fitted build measures every word, and storing the rest would outweigh every other table), and every
    ablation row (the sampled candidates). absorption_split_acts: those words' non-zero split-latent activations.
    `ids`: the SAE, task and probe run every row names."""
    rows: list[AbsorptionWordRow] = []
    acts: dict[int, list[AbsorptionSplitActRow]] = {}  # token id -> its rows (a word of both metrics once)
    words = result.hook.prompts.words
    split_ids = {"sae_key": ids["sae_key"], "task": ids["task"]}

    def keep_acts(token_id: int, values: np.ndarray) -> None:
        acts.setdefault(token_id, [AbsorptionSplitActRow(**split_ids, token_id=token_id, split_index=i + 1, act=act)
                                   for i, act in enumerate(float_list(values, 3)) if act > 0])

    for letter in result.letters:
        name = classes[letter.letter]
        for fold in letter.folds:
            proj = fold.projection
            split = [int(i) for i in fold.split.split_latents]
            for n, word in enumerate(fold.true_positives):
                if not (proj.is_full_absorption[n] or proj.absorption_fraction[n] > 0):
                    continue  # not absorbed: no row (TOKEN_ABSORPTION reads fraction 0 from probe_words)
                absorber, act, score = rounded_absorber(proj.top_latents[n], fold.top_acts[n], proj.top_projections[n], split)
                token_id = words[word].token_id
                keep_acts(token_id, fold.split_acts[n])
                rows.append(AbsorptionWordRow(
                    **ids, metric="projection", letter=name, token_id=token_id,
                    fold=fold.fold, probe_projection=round(float(proj.probe_projection[n]), 3),
                    absorption_fraction=round(float(proj.absorption_fraction[n]), 4),
                    is_full_absorption=bool(proj.is_full_absorption[n]), is_absorption=None,
                    absorber=absorber, absorber_act=act, absorber_score=score,
                ))
            if fold.paper is None:
                continue
            position = {int(w): n for n, w in enumerate(fold.true_positives)}
            for row, word in enumerate(fold.sampled):
                n = position[int(word)]
                absorber, act, score = rounded_absorber(fold.paper.top_latents[row], fold.paper.top_acts[row],
                                                       fold.paper.top_attributions[row], split)
                token_id = words[word].token_id
                keep_acts(token_id, fold.split_acts[n])
                rows.append(AbsorptionWordRow(
                    **ids, metric="ablation", letter=name, token_id=token_id,
                    fold=fold.fold, probe_projection=round(float(proj.probe_projection[n]), 3),
                    absorption_fraction=None, is_full_absorption=None,
                    is_absorption=bool(fold.paper.is_absorption[row]),
                    absorber=absorber, absorber_act=act, absorber_score=score,
                ))
    rows.sort(key=lambda r: (r.metric, r.token_id))  # sorted rows bit-pack well
    split_rows = [r for token_id in sorted(acts) for r in acts[token_id]]
    return {"absorption_words": arrow_table(rows, AbsorptionWordRow),
            "absorption_split_acts": arrow_table(split_rows, AbsorptionSplitActRow)}
