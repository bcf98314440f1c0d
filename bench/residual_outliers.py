"""How much of each hook's residual variance sits in a few huge-norm tokens (attention sinks such as
`<|endoftext|>`), from the sweep's activation cache: why explained variance misleads at some layers.

    python bench/residual_outliers.py            # the embedded sweep's cache, first 256 rows per hook
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.loading.model import load_tokenizer  # noqa: E402

CACHE = Path("data/activations/smollm2-135m-embedded-rows0-39424-pos1")
NORM_RATIO = 5.0  # "huge": residual norm above this many times the median


def report_hook(folder: Path, rows: int, tokenizer) -> None:
    from datasets import load_from_disk

    dataset = load_from_disk(str(folder))
    dataset.set_format("numpy")
    batch = dataset[:rows]
    acts = batch[folder.name].astype(np.float32).reshape(-1, batch[folder.name].shape[-1])  # [tokens, d_in]
    token_ids = np.asarray(batch["token_ids"]).reshape(-1)
    norms = np.linalg.norm(acts, axis=1)
    huge = norms > NORM_RATIO * np.median(norms)
    centred_sq = ((acts - acts.mean(0)) ** 2).sum(1)
    top = collections.Counter(token_ids[huge].tolist()).most_common(3)
    print(f"{folder.name}: {huge.mean():.1%} of {len(norms):,} tokens have > {NORM_RATIO:g}x the median norm "
          f"(max {norms.max() / np.median(norms):.0f}x) and hold {centred_sq[huge].sum() / centred_sq.sum():.0%} of the "
          f"variance; most common: " + ", ".join(f"{tokenizer.decode([t])!r} ({n})" for t, n in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=CACHE, help="a sweep's activation cache (one folder per hook)")
    parser.add_argument("--rows", type=int, default=256, help="corpus rows read per hook")
    args = parser.parse_args()
    hooks = sorted((p for p in args.cache.glob("blocks.*") if (p / "dataset_info.json").exists()),
                   key=lambda p: int(p.name.split(".")[1]))  # finished hooks only, not a .partial shard folder
    if not hooks:
        sys.exit(f"no activation cache in {args.cache}: run `python -m precompute sweep` first")
    tokenizer = load_tokenizer()
    for folder in hooks:
        report_hook(folder, args.rows, tokenizer)


if __name__ == "__main__":
    main()
