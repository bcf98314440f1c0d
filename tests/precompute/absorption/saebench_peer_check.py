"""Run by test_saebench_protocol.py INSIDE the SAEBench peer venv (bench/peers/.venv-saebench), where sae-bench
imports: SAEBench 0.6.0's absorption eval on a tiny random model (SmolLM2's tokenizer, 2 layers, d_model 32) and a
random SAE, once with our activations and once with SAEBench's own run_with_cache calls, on the same words and
seed. Prints one JSON line: both results' summaries, the eval output's validation and the config check."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402

from precompute.absorption import saebench_protocol as sp  # noqa: E402

D_MODEL, D_SAE, LAYER = 32, 96, 1


def tiny_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from precompute.loading.model import load_tokenizer

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=D_MODEL, d_head=8, n_heads=4, d_mlp=64, n_ctx=128,
                                  d_vocab=len(tokenizer), act_fn="gelu", normalization_type="LN",
                                  default_prepend_bos=False, model_name="tiny-smollm2-tokenizer")
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.eval()
    return model


def tiny_sae():
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(1)
    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, dtype="float32", device="cpu")
    cfg.metadata.hook_name = f"blocks.{LAYER}.hook_resid_post"
    cfg.metadata.model_name = "tiny"
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_MODEL, D_SAE) * 0.5)
        sae.b_enc.fill_(-0.1)
        sae.W_dec.copy_(torch.randn(D_SAE, D_MODEL))
    return sp.format_sae_as_saebench(sae)


def main() -> None:
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = tiny_model()
    per_letter = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    words, count = [], dict.fromkeys(sp.LETTERS, 0)
    for token_id, text in sp.saebench_alpha_words(model.tokenizer, seed=3):  # the first words of each letter
        letter = text.strip()[0].lower()
        if count[letter] < per_letter:
            words.append((token_id, text))
            count[letter] += 1
    config = sp.SAEBenchProtocolConfig(seed=5, min_GT_probe_f1=0.0, min_feats_for_eval=2, max_k_value=2,
                                       k_sparse_probe_num_epochs=5, probe_num_epochs=10, activation_batch_size=48)
    out = {}
    for mode in ("ours", "saebench"):
        result = sp.run_saebench_protocol(model, tiny_sae(), words, dataclasses.replace(config, activations=mode))
        out[mode] = result.summary()
        print(mode, result.seconds, file=sys.stderr)
        out[mode].pop("seconds")
        if mode == "ours":
            sp.validate_eval_output(json.loads(json.dumps(result.eval_output)))
            out["eval_output_valid"] = result.eval_output is not None
            out["eval_output_letters"] = [d["first_letter"] for d in result.eval_output["eval_result_details"]]
    default = dataclasses.asdict(AbsorptionEvalConfig())
    ours = sp.SAEBenchProtocolConfig().eval_config_fields()
    out["config_differences"] = sorted(k for k, v in ours.items() if default[k] != v)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
