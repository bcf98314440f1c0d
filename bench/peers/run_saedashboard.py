"""SAEDashboard 0.8.0 on the embedded SmolLM2 + a local sae-lens SAE, over given corpus rows. Runs INSIDE
bench/peers/.venv-saedashboard (bash bench/peers/setup.sh saedashboard); bench/precompute_throughput.py
--peer calls it with the same rows, SAE, latents and thread count as our precompute.

    bench/peers/.venv-saedashboard/bin/python bench/peers/run_saedashboard.py \
        --sae assets/saes/smollm2-l6-topk-4k-k32 --tokens rows.npy [--latents 4096] [--threads 2] [--out r.json]

`--tokens` is a .npy [n_rows, seq_len] array of token ids (our corpus rows). Prints one JSON object (last
line of stdout): seconds per stage, per-latent max activation and firing count for a sanity comparison, and
every setting that differs from SAEDashboard's defaults.

The API is `SaeVisRunner(SaeVisConfig(...)).run(encoder=sae, model=model, tokens=tokens)` (the Neuronpedia
runner loads from the hub). It reruns the model up to the hook for every batch of
`minibatch_size_features` latents.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_common import Stopwatch, emit, load_embedded_model, setup_environment, versions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sae", type=Path, required=True, help="sae-lens folder (cfg.json + weights)")
    parser.add_argument("--tokens", type=Path, required=True, help=".npy [n_rows, seq_len] token ids")
    parser.add_argument("--latents", type=int, default=None, help="latents 0..N-1 (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--minibatch-size-features", type=int, default=256, help="SAEDashboard's default: 256")
    parser.add_argument("--minibatch-size-tokens", type=int, default=64, help="SAEDashboard's default: 64 rows")
    parser.add_argument("--first-position", type=int, default=1,
                        help="positions before this are ignored (ignore_positions), as our precompute does "
                             "(position 0 is an attention sink); 0 = SAEDashboard's default")
    parser.add_argument("--bare-pass", action="store_true",
                        help="also time one bare pass (model to the hook + encode) in this venv")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    setup_environment(args.threads)

    import numpy as np
    import torch
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    from sae_lens import SAE

    watch = Stopwatch()
    with watch("load_model"):
        model = load_embedded_model()
    with watch("load_sae"):
        # float32 on load: our shipped SAEs are fp16, and fp16 matmuls on CPU are ~100x slower
        sae = SAE.load_from_disk(str(args.sae), device="cpu", dtype="float32")
        sae.eval()
    tokens = torch.from_numpy(np.load(args.tokens)).long()
    d_sae = sae.cfg.d_sae
    n_latents = min(args.latents or d_sae, d_sae)
    hook = sae.cfg.metadata.hook_name

    if args.bare_pass:
        layer = int(re.match(r"blocks\.(\d+)\.", hook).group(1))
        with watch("bare_pass"):
            for batch in tokens.split(args.minibatch_size_tokens):
                _, cache = model.run_with_cache(batch, names_filter=[hook], stop_at_layer=layer + 1)
                sae.encode(cache[hook])

    config = SaeVisConfig(
        hook_point=hook,
        features=list(range(n_latents)),
        minibatch_size_features=args.minibatch_size_features,
        minibatch_size_tokens=args.minibatch_size_tokens,
        device="cpu",
        dtype="float32",
        ignore_positions=list(range(args.first_position)),
    )
    with watch("dashboards"):
        data = SaeVisRunner(config).run(encoder=sae, model=model, tokens=tokens)

    # Per latent, from SAEDashboard's activation histogram (built from every non-ignored position): how often
    # it fires, and its max activation (the top bin's upper edge; SAEDashboard rounds bin centres to 1e-5).
    # The top-activation sequences are no use here: they skip the first and last 5 positions of a row.
    max_act, n_fired = [], []
    for latent in range(n_latents):
        hist = data.feature_data_dict[latent].acts_histogram_data
        heights, values = hist.bar_heights or [], hist.bar_values or []
        n_fired.append(int(sum(heights)))
        max_act.append(values[-1] + (values[-1] - values[-2]) / 2 if len(values) > 1 else (values[0] if values else 0.0))

    emit({
        "tool": "SAEDashboard",
        "versions": versions("sae-dashboard", "sae-lens", "transformer-lens", "transformers", "torch"),
        "threads": torch.get_num_threads(),
        "sae": args.sae.name,
        "hook": hook,
        "n_rows": int(tokens.shape[0]),
        "seq_len": int(tokens.shape[1]),
        "n_tokens": int(tokens.numel()),
        "latents": n_latents,
        "d_sae": d_sae,
        "model_passes": math.ceil(n_latents / args.minibatch_size_features),
        "seconds": watch.seconds,
        "cpu_seconds": watch.cpu_seconds,
        "sanity": {"max_act": max_act, "n_fired": n_fired},
        "deviations": [
            "model: the embedded SmolLM2-135M-Instruct (GGUF -> HookedTransformer by precompute/loading/model.py), "
            "not HookedTransformer.from_pretrained (no hub)",
            "SAE loaded in float32 (dtype='float32'): the shipped weights are fp16",
            f"ignore_positions={list(range(args.first_position))} (default []): our precompute excludes the "
            "attention-sink position 0 too; masking only, no effect on speed",
        ] if args.first_position else [
            "model: the embedded SmolLM2-135M-Instruct (GGUF -> HookedTransformer by precompute/loading/model.py)",
            "SAE loaded in float32 (dtype='float32'): the shipped weights are fp16",
        ],
    }, args.out)


if __name__ == "__main__":
    main()
