"""Absorption results as rows of the tables in backend/sql/schema.sql."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from precompute.absorption.prompts import LETTERS
from precompute.absorption.run import AbsorptionConfig, HookProbeData, SAEAbsorption


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
    digest.update(np.asarray(prompts.is_test, dtype=np.bool_).tobytes())
    digest.update(np.asarray(prompts.prefix_index, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(hook.probe.weight, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(hook.probe.bias, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def r(value: float, decimals: int = 4) -> float | None:
    """Rounded display value; NaN becomes NULL."""
    return None if value is None or not np.isfinite(value) else round(float(value), decimals)


def float_list(values, decimals: int = 4) -> list[float]:
    return [round(float(v), decimals) for v in values]


def hook_tables(hook: HookProbeData, config: AbsorptionConfig, tokenizer, run_id: str) -> dict[str, pa.Table]:
    prompts = hook.prompts
    run = {
        "probe_run_id": run_id, "model_name": hook.model_name, "hook_name": hook.hook_name, "config": config_json(config),
        "n_words": len(prompts), "n_train": int((~prompts.is_test).sum()), "n_test": int(prompts.is_test.sum()),
        "n_dropped": prompts.n_dropped, "prompt_template": config.prompts.template,
        "seconds": json.dumps({k: round(v, 2) for k, v in hook.seconds.items()}), "created_at": now(),
    }
    labels = prompts.labels
    letters = []
    for j, letter in enumerate(LETTERS):
        neuron, pca = hook.neuron_baseline[j], hook.pca_baseline[j]
        letters.append({
            "probe_run_id": run_id, "model_name": hook.model_name, "hook_name": hook.hook_name, "letter": letter,
            "weight": float_list(hook.probe.weight[j], 6), "bias": float(hook.probe.bias[j]),
            "n_train": int(((labels == j) & ~prompts.is_test).sum()), "n_test": int(((labels == j) & prompts.is_test).sum()),
            "probe_precision": float(hook.test_scores.precision[j]), "probe_recall": float(hook.test_scores.recall[j]),
            "probe_f1": float(hook.test_scores.f1[j]), "probe_auc": r(hook.aucs[j]),
            "probe_stability": float(hook.stability[j]), "n_probe_true_positives": int(len(hook.probe_true_positives(j))),
            "model_accuracy": float(hook.model_accuracy[j]), "model_checked": int(hook.model_checked[j]),
            "neuron": neuron.index, "neuron_sign": neuron.sign, "neuron_precision": neuron.precision,
            "neuron_recall": neuron.recall, "neuron_f1": neuron.f1,
            "pca_component": pca.index, "pca_sign": pca.sign, "pca_precision": pca.precision,
            "pca_recall": pca.recall, "pca_f1": pca.f1,
        })
    own_logits = hook.probe_logits[np.arange(len(prompts)), labels]
    words = pa.table({
        "probe_run_id": [run_id] * len(prompts), "model_name": [hook.model_name] * len(prompts), "hook_name": [hook.hook_name] * len(prompts),
        "token_id": pa.array([w.token_id for w in prompts.words], pa.int32()),
        "letter": [LETTERS[j] for j in labels], "is_test": prompts.is_test,
        "prefix_id": pa.array(prompts.prefix_index, pa.int32()),
        "probe_logit": pa.array(np.round(own_logits, 3), pa.float32()),
        "model_correct": pa.array([hook.model_correct.get(i) for i in range(len(prompts))], pa.bool_()),
    })
    prefixes = pa.table({
        "probe_run_id": [run_id] * len(prompts.prefixes), "model_name": [hook.model_name] * len(prompts.prefixes), "hook_name": [hook.hook_name] * len(prompts.prefixes),
        "prefix_id": pa.array(range(len(prompts.prefixes)), pa.int32()),
        "text": [tokenizer.decode(ids, skip_special_tokens=False) for ids in prompts.prefixes],
    })
    return {"probe_runs": pa.Table.from_pylist([run]), "letter_probes": pa.Table.from_pylist(letters),
            "probe_words": words, "probe_prefixes": prefixes}


def sae_tables(result: SAEAbsorption, config: AbsorptionConfig, run_id: str) -> dict[str, pa.Table]:
    """One SAE's rows; every row names the probe run it was measured against."""
    tables = _sae_tables(result, config)
    return {name: table.add_column(1, "probe_run_id", pa.array([run_id] * len(table), pa.string()))
            for name, table in tables.items()}


def _sae_tables(result: SAEAbsorption, config: AbsorptionConfig) -> dict[str, pa.Table]:
    key, hook = result.sae_key, result.hook
    fraction_by_letter, fraction = result.fraction
    full_by_letter, full = result.full
    paper_by_letter, paper = result.paper_rate
    included = result.included_letters

    def spread(values: list[float]) -> float | None:
        return r(float(np.std(values, ddof=1))) if len(values) > 1 else None

    n_split = [len(result.letters[j].split.split_latents) for j in included]
    summary = {
        "sae_key": key, "hook_name": hook.hook_name, "n_letters": len(included),
        "mean_absorption_fraction": r(fraction.value), "mean_absorption_fraction_low": r(fraction.low),
        "mean_absorption_fraction_high": r(fraction.high),
        "std_absorption_fraction": spread([fraction_by_letter[j].value for j in included]),
        "full_absorption_rate": r(full.value), "full_absorption_rate_low": r(full.low), "full_absorption_rate_high": r(full.high),
        "std_full_absorption": spread([full_by_letter[j].value for j in included]),
        "paper_absorption_rate": r(paper.value) if config.run_ablation_metric else None,
        "paper_absorption_rate_low": r(paper.low) if config.run_ablation_metric else None,
        "paper_absorption_rate_high": r(paper.high) if config.run_ablation_metric else None,
        "std_paper_absorption": spread([paper_by_letter[j].value for j in included]) if config.run_ablation_metric else None,
        "mean_num_split_latents": r(float(np.mean(n_split))) if n_split else None, "std_num_split_latents": spread(n_split),
        "mean_main_precision": r(np.mean([result.letters[j].main.precision for j in included])) if included else None,
        "mean_main_recall": r(np.mean([result.letters[j].main.recall for j in included])) if included else None,
        "mean_main_f1": r(np.mean([result.letters[j].main.f1 for j in included])) if included else None,
        "mean_probe_f1": r(np.mean([hook.test_scores.f1[j] for j in included])) if included else None,
        "config": config_json(config), "seconds": json.dumps({k: round(v, 2) for k, v in result.seconds.items()}),
        "created_at": now(),
    }
    letters, ks_rows = [], []
    for letter in result.letters:
        j, name = letter.letter, LETTERS[letter.letter]
        paper_rows = letter.paper.is_absorption if letter.paper is not None else np.array([], dtype=bool)
        letters.append({
            "sae_key": key, "letter": name, "included": j in included,
            "split_latents": letter.split.split_latents, "n_split": len(letter.split.split_latents),
            "main_latent": letter.main.latent, "main_encoder_cos": letter.main.encoder_cos,
            "main_precision": letter.main.precision, "main_recall": letter.main.recall, "main_f1": letter.main.f1,
            "best_latent": letter.best_latent.index, "best_precision": letter.best_latent.precision,
            "best_recall": letter.best_latent.recall, "best_f1": letter.best_latent.f1,
            "n_probe_true_positives": len(letter.true_positives),
            "mean_absorption_fraction": r(fraction_by_letter[j].value), "absorption_fraction_low": r(fraction_by_letter[j].low),
            "absorption_fraction_high": r(fraction_by_letter[j].high),
            "full_absorption_rate": r(full_by_letter[j].value), "full_absorption_rate_low": r(full_by_letter[j].low),
            "full_absorption_rate_high": r(full_by_letter[j].high),
            "n_full_absorption": int(letter.projection.is_full_absorption.sum()),
            "paper_absorption_rate": r(paper_by_letter[j].value) if letter.paper is not None else None,
            "paper_absorption_rate_low": r(paper_by_letter[j].low) if letter.paper is not None else None,
            "paper_absorption_rate_high": r(paper_by_letter[j].high) if letter.paper is not None else None,
            "n_candidates": len(letter.candidates), "n_sampled": len(letter.sampled), "n_paper_absorption": int(paper_rows.sum()),
        })
        for fit in letter.split.fits:
            ks_rows.append({"sae_key": key, "letter": name, "k": fit.k, "latents": fit.latents,
                            "weights": float_list(fit.weights), "bias": fit.bias,
                            "precision": fit.precision, "recall": fit.recall, "f1": fit.f1})
    d_sae = result.decoder_cos.shape[0]
    cos = pa.table({
        "sae_key": [key] * (d_sae * 26),
        "latent": pa.array(np.repeat(np.arange(d_sae), 26), pa.int32()),
        "letter": list(LETTERS) * d_sae,
        "decoder_cos": pa.array(np.round(result.decoder_cos.reshape(-1), 4), pa.float32()),
        "encoder_cos": pa.array(np.round(result.encoder_cos.reshape(-1), 4), pa.float32()),
    })
    return {"sae_absorption": pa.Table.from_pylist([summary]), "sae_letters": pa.Table.from_pylist(letters),
            "sae_letter_k": pa.Table.from_pylist(ks_rows), "latent_letter_cos": cos,
            "absorption_words": word_rows(result)}


def word_rows(result: SAEAbsorption) -> pa.Table:
    rows = []
    words = result.hook.prompts.words
    for letter in result.letters:
        name = LETTERS[letter.letter]
        proj = letter.projection
        for n, word in enumerate(letter.true_positives):
            top = proj.top_latents[n]
            rows.append({
                "sae_key": result.sae_key, "metric": "projection", "letter": name, "token_id": words[word].token_id,
                "probe_projection": round(float(proj.probe_projection[n]), 3),
                "split_acts": float_list(letter.split_acts[n], 3),
                "absorption_fraction": round(float(proj.absorption_fraction[n]), 4),
                "is_full_absorption": bool(proj.is_full_absorption[n]), "is_absorption": None,
                "top_latents": [int(i) for i in top], "top_acts": float_list(letter.top_acts[n], 3),
                "top_scores": float_list(proj.top_projections[n], 3),
            })
        if letter.paper is None:
            continue
        position = {int(w): n for n, w in enumerate(letter.true_positives)}
        for row, word in enumerate(letter.sampled):
            n = position[int(word)]
            rows.append({
                "sae_key": result.sae_key, "metric": "ablation", "letter": name, "token_id": words[word].token_id,
                "probe_projection": round(float(proj.probe_projection[n]), 3),
                "split_acts": float_list(letter.split_acts[n], 3),
                "absorption_fraction": None, "is_full_absorption": None,
                "is_absorption": bool(letter.paper.is_absorption[row]),
                "top_latents": [int(i) for i in letter.paper.top_latents[row]],
                "top_acts": float_list(letter.paper.top_acts[row], 3),
                "top_scores": float_list(letter.paper.top_attributions[row], 3),
            })
    schema = pa.schema([
        ("sae_key", pa.string()), ("metric", pa.string()), ("letter", pa.string()), ("token_id", pa.int32()),
        ("probe_projection", pa.float32()), ("split_acts", pa.list_(pa.float32())),
        ("absorption_fraction", pa.float32()), ("is_full_absorption", pa.bool_()), ("is_absorption", pa.bool_()),
        ("top_latents", pa.list_(pa.int32())), ("top_acts", pa.list_(pa.float32())), ("top_scores", pa.list_(pa.float32())),
    ])
    return pa.Table.from_pylist(rows, schema=schema)
