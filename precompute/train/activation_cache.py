"""One model pass over the training corpus, cached for every hook of a sweep, in sae-lens's format.

sae-lens's `CacheActivationsRunner` caches one hook per model pass and always loads the model by name;
a sweep over layers 2, 6 and 12 would run the model three times. This writes the same on-disk format
(a Hugging Face `datasets` folder per hook, one `Array2D(context, d_in)` column named after the hook
plus `token_ids`) from a single `run_with_cache` pass up to the deepest hook, shard by shard so an
interrupted run resumes at the next missing shard, and merges the shards with sae-lens's own
`CacheActivationsRunner._consolidate_shards`. `LanguageModelSAERunnerConfig(use_cached_activations=True)`
then trains from it without running the model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

CACHE_ROOT = Path("data/activations")
DONE_FILE = "cache_spec.json"


@dataclass(frozen=True)
class ActivationCacheSpec:
    model_name: str
    hooks: tuple[str, ...]  # full TransformerLens hook names, e.g. "blocks.6.hook_resid_post"
    corpus_rows: tuple[int, int] = (0, 39_424)  # 39,424 rows x 127 positions = 5.0 M tokens
    first_position: int = 1  # position 0 is an attention sink with ~6x the residual norm; the SAEs skip it
    dtype: str = "float16"  # halves the cache (5 M tokens x 576 dims = 5.8 GB per hook)
    rows_per_shard: int = 1024
    batch_size: int = 32  # corpus rows per model call

    @classmethod
    def from_dict(cls, data: dict) -> "ActivationCacheSpec":
        return cls(**{**data, "hooks": tuple(data["hooks"]), "corpus_rows": tuple(data["corpus_rows"])})

    @property
    def name(self) -> str:
        return f"{self.model_name}-rows{self.corpus_rows[0]}-{self.corpus_rows[1]}-pos{self.first_position}"

    @property
    def stop_at_layer(self) -> int:
        return max(hook_layer(hook) for hook in self.hooks) + 1

    def context_size(self, corpus_context: int) -> int:
        return corpus_context - self.first_position

    def hook_path(self, hook: str, root: Path = CACHE_ROOT) -> Path:
        return root / self.name / hook


def hook_layer(hook: str) -> int:
    return int(hook.split(".")[1])


def is_complete(spec: ActivationCacheSpec, root: Path = CACHE_ROOT) -> bool:
    return all((spec.hook_path(hook, root) / DONE_FILE).exists() for hook in spec.hooks)


def shard_ranges(spec: ActivationCacheSpec) -> list[tuple[int, int]]:
    start, stop = spec.corpus_rows
    return [(s, min(s + spec.rows_per_shard, stop)) for s in range(start, stop, spec.rows_per_shard)]


def hook_features(hook: str, context_size: int, d_in: int, dtype: str):
    from datasets import Array2D, Features, Sequence, Value

    return Features({hook: Array2D(shape=(context_size, d_in), dtype=dtype),
                     "token_ids": Sequence(Value("int32"), length=context_size)})


@torch.no_grad()
def shard_activations(model, tokens: torch.Tensor, spec: ActivationCacheSpec) -> dict[str, torch.Tensor]:
    """tokens: [rows, ctx] -> {hook: [rows, ctx - first_position, d_model]} in the cache dtype."""
    out: dict[str, list[torch.Tensor]] = {hook: [] for hook in spec.hooks}
    torch_dtype = getattr(torch, spec.dtype)
    for i in range(0, len(tokens), spec.batch_size):
        batch = tokens[i:i + spec.batch_size].to(model.cfg.device)
        _, cache = model.run_with_cache(batch, names_filter=list(spec.hooks), stop_at_layer=spec.stop_at_layer)
        for hook in spec.hooks:
            out[hook].append(cache[hook][:, spec.first_position:].to("cpu", torch_dtype))
    return {hook: torch.cat(parts) for hook, parts in out.items()}


def write_shard(folder: Path, hook: str, acts: torch.Tensor, token_ids: torch.Tensor, dtype: str) -> None:
    from datasets import Dataset

    rows, context_size, d_in = acts.shape
    # written next to the shard folders, not among them: the merger counts every entry of .tmp_shards
    tmp = folder.parent.parent.parent / ".partial" / f"{hook}-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    dataset = Dataset.from_dict(
        {hook: acts.float().numpy().astype(dtype), "token_ids": token_ids.numpy().astype(np.int32)},
        features=hook_features(hook, context_size, d_in, dtype),
    )
    dataset.save_to_disk(str(tmp), num_shards=1)
    shutil.move(str(tmp), str(folder))  # a shard folder exists only once it is complete


def build_activation_cache(spec: ActivationCacheSpec, corpus_path: Path, model, root: Path = CACHE_ROOT,
                           log=print) -> dict[str, Path]:
    """Cache every hook of `spec`; resumes at the first missing shard. Returns {hook: dataset folder}."""
    from sae_lens import CacheActivationsRunner

    paths = {hook: spec.hook_path(hook, root) for hook in spec.hooks}
    if is_complete(spec, root):
        return paths
    column = pq.read_table(corpus_path, columns=["input_ids"]).column("input_ids")
    corpus_context = len(column[0].as_py())
    ranges = shard_ranges(spec)
    todo = [(i, r) for i, r in enumerate(ranges)
            if not all((paths[h] / ".tmp_shards" / f"shard_{i:05d}").exists() for h in spec.hooks)]
    log(f"activation cache {spec.name}: {len(ranges) - len(todo)}/{len(ranges)} shards present, "
        f"hooks {', '.join(spec.hooks)}")
    for index, (start, stop) in tqdm(todo, desc="caching activations", unit="shard"):
        tokens = torch.tensor(np.stack(column.slice(start, stop - start).to_numpy(zero_copy_only=False)))
        acts = shard_activations(model, tokens, spec)
        token_ids = tokens[:, spec.first_position:]
        for hook in spec.hooks:
            shard = paths[hook] / ".tmp_shards" / f"shard_{index:05d}"
            if not shard.exists():
                shard.parent.mkdir(parents=True, exist_ok=True)
                write_shard(shard, hook, acts[hook], token_ids, spec.dtype)
    for hook, path in paths.items():
        CacheActivationsRunner._consolidate_shards(path / ".tmp_shards", path, copy_files=False)
        shutil.rmtree(path / ".tmp_shards", ignore_errors=True)
        (path / DONE_FILE).write_text(json.dumps({**asdict(spec), "hook": hook,
                                                  "context_size": spec.context_size(corpus_context)}, indent=2))
    return paths
