"""SAEBench 0.6.0's first-letter absorption eval on the embedded SmolLM2 + a local sae-lens SAE, over a given
word list. Runs INSIDE bench/peers/.venv-saebench (bash bench/peers/setup.sh saebench);
bench/absorption_eval.py --peer calls it with the same words, seed and thread count as our precompute.

    bench/peers/.venv-saebench/bin/python bench/peers/run_saebench_absorption.py \
        --sae assets/saes/smollm2-l6-topk-4k-k32 --words words.json [--seed 42] [--threads 2] [--out r.json]

`--words` is a JSON list of [token_id, text] pairs (text as the tokenizer decodes the token, e.g. " cat").

It calls the functions `sae_bench/evals/absorption/main.py::run_eval` calls, with the same arguments and
SAEBench's defaults (`AbsorptionEvalConfig()`): the probe (`common.create_and_train_probe`, split into its
dataset / activation / training steps so each is timed) -> `k_sparse_probing.run_k_sparse_probing_experiment`
-> `feature_absorption.run_feature_absortion_experiment` -> `main._aggregate_results_df` and run_eval's
per-letter filter and means. `run_eval` itself loads model and SAE from the hub, so the steps are driven
here. Every deviation from SAEBench's defaults is listed in the printed JSON (`deviations`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository: the prompt check is shared with ours
from peer_common import Stopwatch, emit, load_embedded_model, setup_environment, versions  # noqa: E402

from precompute.absorption.saebench_protocol import check_prompts  # noqa: E402  (stdlib imports only at its top)

MODEL_NAME = "smollm2-135m-embedded"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sae", type=Path, required=True, help="sae-lens folder (cfg.json + weights)")
    parser.add_argument("--words", type=Path, required=True, help="JSON list of [token_id, text]")
    parser.add_argument("--seed", type=int, default=42, help="seeds python, numpy and torch (SAEBench's default 42)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--llm-batch-size", type=int, default=None,
                        help="prompts per model call in the absorption step (default: AbsorptionEvalConfig's)")
    parser.add_argument("--workdir", type=Path, default=None, help="SAEBench's artifacts (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    setup_environment(args.threads)

    import numpy as np
    import torch
    from sae_bench.evals.absorption import probing
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig
    from sae_bench.evals.absorption.feature_absorption import run_feature_absortion_experiment
    from sae_bench.evals.absorption.k_sparse_probing import run_k_sparse_probing_experiment
    from sae_bench.evals.absorption.main import _aggregate_results_df
    from sae_bench.evals.absorption.prompting import first_letter_formatter
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae
    from sae_lens import SAE

    torch.set_grad_enabled(True)  # as run_eval: the probes are trained with autograd
    watch = Stopwatch()
    with watch("load_model"):
        model = load_embedded_model()
    with watch("load_sae"):
        sae = SAE.load_from_disk(str(args.sae), device="cpu", dtype="float32")
        sae.fold_W_dec_norm()  # as load_and_format_sae does for sae-lens SAEs
        _, sae, _ = load_and_format_sae("custom", sae, "cpu")
    hook = sae.cfg.metadata.hook_name
    layer = int(re.match(r"blocks\.(\d+)\.hook_resid_post$", hook).group(1))

    # Activations are only read at the hook: stop the forward pass after its block (identical activations,
    # skips the later blocks and the unembedding). SAEBench runs the whole model.
    run_with_cache = model.run_with_cache
    model.run_with_cache = lambda *a, **kw: run_with_cache(*a, **{"stop_at_layer": layer + 1, **kw})

    config = AbsorptionEvalConfig(model_name=MODEL_NAME, random_seed=args.seed, llm_dtype="float32",
                                  precalc_k_sparse_probe_sae_acts=True)
    if args.llm_batch_size:
        config.llm_batch_size = args.llm_batch_size
    pairs = [(int(i), str(t)) for i, t in json.loads(args.words.read_text())]
    vocab = [text for _, text in pairs]
    word_ids = {text: i for i, text in pairs}
    if len(word_ids) != len(pairs):
        raise SystemExit("--words: two token ids decode to the same text")

    # run_eval never seeds; we do, so that two runs on the same words agree
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    work = args.workdir
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="saebench-"))
        atexit.register(shutil.rmtree, work, True)
    probes_dir, results_dir = work / "probes", work / "results"
    probe_path = probes_dir / MODEL_NAME / f"layer_{layer}"
    sae_name = f"local_{args.sae.name}"
    probe_batch_size, device = 64, "cpu"  # common.train_and_save_probes' defaults

    # -- the probe: common.train_and_save_probes -> create_and_train_probe, one step at a time
    with watch("prompts"):
        train_set, test_set = probing.create_dataset_probe_training(
            vocab=vocab, formatter=first_letter_formatter(), num_prompts_per_token=1,
            base_template=config.prompt_template)
    try:
        checks = check_prompts(model.tokenizer, (train_set, test_set), word_ids, config.prompt_template,
                               config.prompt_token_pos)
    except ValueError as error:  # SAEBench would read the wrong position: stop with the check's numbers
        raise SystemExit(str(error)) from error
    with watch("probe_activations"):
        train_df, test_df, train_acts, test_acts = probing.gen_and_save_df_acts_probing(
            model=model, train_dataset=train_set, test_dataset=test_set, path=probe_path, hook_point=hook,
            batch_size=probe_batch_size, position_idx=config.prompt_token_pos)
    with watch("probe_training"):
        probe, probe_data = probing.train_linear_probe_for_task(
            train_df=train_df, test_df=test_df, train_activations=train_acts, test_activations=test_acts,
            num_classes=26, batch_size=probe_batch_size, num_epochs=50, lr=1e-2, device=torch.device(device))
        probing.save_probe_and_data(probe, probe_data, probing_path=probe_path)

    # -- run_eval's per-SAE steps
    with watch("k_sparse_probing"):
        k_sparse = run_k_sparse_probing_experiment(
            model=model, sae=sae, layer=layer, sae_name=sae_name, force=True,
            max_k_value=config.max_k_value, f1_jump_threshold=config.f1_jump_threshold,
            prompt_template=config.prompt_template, prompt_token_pos=config.prompt_token_pos, device=device,
            k_sparse_probe_l1_decay=config.k_sparse_probe_l1_decay,
            k_sparse_probe_batch_size=config.k_sparse_probe_batch_size,
            k_sparse_probe_num_epochs=config.k_sparse_probe_num_epochs,
            eval_batch_size=config.eval_k_sparse_probe_batch_size,
            precalc_k_sparse_probe_sae_acts=config.precalc_k_sparse_probe_sae_acts,
            experiment_dir=results_dir / "k_sparse_probing", probes_dir=probes_dir, verbose=False)
    enough = int((k_sparse["f1_probe"] > config.min_GT_probe_f1).sum())
    if enough < config.min_feats_for_eval:  # run_eval stops here too (`break`: no result for the SAE)
        stopped = (f"SAEBench stops after k-sparse probing: {enough} letters with probe F1 > "
                   f"{config.min_GT_probe_f1} (< min_feats_for_eval = {config.min_feats_for_eval}); use more words")
        raw = agg = None
    else:
        stopped = None
        with watch("absorption"):
            raw = run_feature_absortion_experiment(
                model=model, sae=sae, layer=layer, sae_name=sae_name, force=True,
                max_k_value=config.max_k_value, feature_split_f1_jump_threshold=config.f1_jump_threshold,
                prompt_template=config.prompt_template, prompt_token_pos=config.prompt_token_pos,
                batch_size=config.llm_batch_size, device=device,
                experiment_dir=results_dir / "feature_absorption",
                sparse_probing_experiment_dir=results_dir / "k_sparse_probing", probes_dir=probes_dir)
            agg = _aggregate_results_df(raw)

    # run_eval's aggregation: letters whose probe F1 > min_GT_probe_f1
    per_letter = {}
    for _, row in (agg.iterrows() if agg is not None else []):
        f1 = k_sparse[k_sparse["letter"] == row["letter"]]["f1_probe"].item()
        if f1 > config.min_GT_probe_f1:
            per_letter[row["letter"]] = {
                "mean_absorption_fraction": float(row["mean_absorption_fraction"]),
                "full_absorption_rate": float(row["full_absorption_rate"]),
                "num_full_absorption": int(row["num_full_absorption"]),
                "num_probe_true_positives": float(row["num_probe_true_positives"]),
                "num_split_features": int(row["num_split_feats"]),
                "probe_f1": float(f1),
            }
    column = lambda name: [v[name] for v in per_letter.values()]  # noqa: E731
    results = {
        "mean_absorption_fraction": statistics.mean(column("mean_absorption_fraction")),
        "mean_full_absorption": statistics.mean(column("full_absorption_rate")),
        "mean_num_split_features": statistics.mean(column("num_split_features")),
        "std_absorption_fraction": statistics.stdev(column("mean_absorption_fraction")),
        "n_letters": len(per_letter),
        "per_letter": per_letter,
    } if len(per_letter) > 1 else {}
    results["mean_probe_f1_all_letters"] = float(k_sparse["f1_probe"].mean())
    results["letters_probe_f1_above_min"] = enough
    eval_keys = ("prompts", "probe_activations", "probe_training", "k_sparse_probing", "absorption")
    watch.seconds["eval_total"] = sum(watch.seconds.get(k, 0.0) for k in eval_keys)
    watch.cpu_seconds["eval_total"] = sum(watch.cpu_seconds.get(k, 0.0) for k in eval_keys)
    emit({
        "tool": "SAEBench absorption",
        "versions": versions("sae-bench", "sae-lens", "transformer-lens", "transformers", "torch"),
        "threads": torch.get_num_threads(),
        "sae": args.sae.name,
        "hook": hook,
        "seed": args.seed,
        "n_words": len(vocab),
        "n_train": len(train_set),
        "n_test": len(test_set),
        "checks": checks,
        "seconds": watch.seconds,
        "cpu_seconds": watch.cpu_seconds,
        "stopped": stopped,
        "results": results,
        "config": {"llm_batch_size": config.llm_batch_size, "probe_batch_size": probe_batch_size,
                   "precalc_k_sparse_probe_sae_acts": config.precalc_k_sparse_probe_sae_acts},
        "deviations": [
            "model: the embedded SmolLM2-135M-Instruct (GGUF -> HookedTransformer by precompute/loading/model.py), "
            "not HookedTransformer.from_pretrained_no_processing (no hub); no BOS (SmolLM2's tokenizer adds none)",
            f"words: the given {len(vocab)} words instead of every alphabetic token (get_alpha_tokens) for the "
            "probe and k-sparse probing; the absorption step's in-context examples still come from the whole "
            "alphabetic vocabulary, as in SAEBench",
            f"seeded python/numpy/torch with {args.seed} (run_eval never seeds)",
            f"stop_at_layer={layer + 1} on every model call (identical activations at the hook; skips the rest)",
            "precalc_k_sparse_probe_sae_acts=True (default False): same probes, much faster on CPU",
            "SAE: SAE.load_from_disk(dtype='float32') + fold_W_dec_norm(), as load_and_format_sae does",
        ],
    }, args.out)


if __name__ == "__main__":
    main()
