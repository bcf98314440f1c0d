"""Model passes over a prompt set: activations at the word position, and the model's own answer.

A group of words sharing a prefix runs the prefix once (batch 1), keeps its keys/values in a frozen
TransformerLens cache expanded to the group, then runs only the new tokens. Fresh per-word prefixes
are the degenerate case of groups of one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.utilities.activation_functions import apply_softcap

from precompute.absorption.prefix_attention import shared_prefix_attention, shared_view
from precompute.absorption.prompts import PromptSet
from precompute.loading.packed import keep_freed_buffers, packed_linears

PREFIX_CACHE_BYTES = 2 << 30  # what kept_prefix_caches holds at most (SmolLM2-135M: ~5 MB a whole-model prefix)


@dataclass
class PrefixCacheStore:
    """Frozen batch-1 prefix caches of one model, least recently used first, within a byte budget. A prefix's keys
    and values depend on the model alone, so one cache serves the word activations (which read its first layers),
    the model check and the paper metric of every SAE and hook; served from here they are the very tensors a rerun
    would compute (the same operations on the same inputs)."""

    model: HookedTransformer
    max_bytes: int
    caches: OrderedDict[tuple[tuple[int, ...], int], TransformerLensKeyValueCache] = field(default_factory=OrderedDict)
    n_bytes: int = 0
    hits: int = 0
    misses: int = 0

    def get(self, prefix_ids: list[int], layers: int) -> TransformerLensKeyValueCache | None:
        """A kept cache of the prefix covering at least `layers` layers (the whole model's serves any)."""
        prefix = tuple(prefix_ids)
        for key in self.caches:
            if key[0] == prefix and key[1] >= layers:
                self.caches.move_to_end(key)
                self.hits += 1
                return self.caches[key]
        self.misses += 1
        return None

    def put(self, prefix_ids: list[int], layers: int, cache: TransformerLensKeyValueCache) -> None:
        prefix = tuple(prefix_ids)
        if layers == self.model.cfg.n_layers:  # the whole model's supersedes the prefix's shallower caches
            for key in [key for key in self.caches if key[0] == prefix]:
                self.n_bytes -= cache_bytes(self.caches.pop(key))
        self.caches[(prefix, layers)] = cache
        self.n_bytes += cache_bytes(cache)
        while self.n_bytes > self.max_bytes and len(self.caches) > 1:
            _, dropped = self.caches.popitem(last=False)
            self.n_bytes -= cache_bytes(dropped)


def cache_bytes(cache: TransformerLensKeyValueCache) -> int:
    """Keys and values, and rotated keys once the shared-prefix attention has made them (prefix_attention.py)."""
    return int(sum(e.past_keys.nbytes * 2.5 for e in cache.entries))


_STORES: dict[int, PrefixCacheStore] = {}  # id(model) -> its store, while kept_prefix_caches(model) runs


@contextmanager
def kept_prefix_caches(model: HookedTransformer, max_bytes: int = PREFIX_CACHE_BYTES) -> Iterator[PrefixCacheStore]:
    """Within the block, prefix_cache(model, ...) keeps the caches it computes and serves a repeated prefix from them:
    a build's hooks and SAEs run the same prompts' prefixes (the word activations at each hook, the model check once,
    the paper metric per SAE). Nested blocks share the outer store."""
    outer = _STORES.get(id(model))
    if outer is not None and outer.model is model:
        yield outer
        return
    store = PrefixCacheStore(model, max_bytes)
    _STORES[id(model)] = store
    try:
        yield store
    finally:
        del _STORES[id(model)]


def prefix_cache(model: HookedTransformer, prefix_ids: list[int], stop_at_layer: int | None) -> TransformerLensKeyValueCache:
    """Keys/values of the prefix for the layers that will run (batch 1), frozen for reuse; inside
    kept_prefix_caches(model), a kept cache of the prefix when one covers those layers."""
    layers = model.cfg.n_layers if stop_at_layer is None else min(stop_at_layer, model.cfg.n_layers)
    store = _STORES.get(id(model))
    if store is not None and store.model is model:
        cache = store.get(prefix_ids, layers)
        if cache is None:
            cache = computed_prefix_cache(model, prefix_ids, stop_at_layer)
            store.put(prefix_ids, layers, cache)
        return cache
    return computed_prefix_cache(model, prefix_ids, stop_at_layer)


def computed_prefix_cache(model: HookedTransformer, prefix_ids: list[int], stop_at_layer: int | None) -> TransformerLensKeyValueCache:
    """prefix_cache's computation: the prefix through the layers that will run."""
    device = model.cfg.device
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch_size=1)
    tokens = torch.tensor([prefix_ids], device=device)
    model(tokens, past_kv_cache=cache, stop_at_layer=stop_at_layer, attention_mask=torch.ones_like(tokens),
          return_type=None if stop_at_layer is None else "logits")
    cache.freeze()
    return cache


def expanded(cache: TransformerLensKeyValueCache, batch_size: int) -> TransformerLensKeyValueCache:
    """A view of a batch-1 cache for `batch_size` prompts (no copy). Inside `shared_prefix_attention(model)` the
    prompts attend to it without copying it per row either (precompute/absorption/prefix_attention.py)."""
    return shared_view(cache, batch_size)


@contextmanager
def fast_passes(model: HookedTransformer, *modules) -> Iterator[None]:
    """The block's model passes with the model's and `modules`' (SAEs') weights packed for oneDNN
    (precompute/loading/packed.py) and prompts attending to a shared prefix without copying it per row
    (precompute/absorption/prefix_attention.py). Numbers equal torch's own path to float32 rounding."""
    keep_freed_buffers()
    with packed_linears(model, *modules), shared_prefix_attention(model):
        yield


def final_logits(model: HookedTransformer, resid: torch.Tensor, answers: torch.Tensor | None = None) -> torch.Tensor:
    """resid [rows, d_model] after the last block -> [rows, len(answers)]: the model's own logits for those tokens
    (its final norm if it has one, the unembedding's columns and soft cap), without the rest of the vocabulary;
    answers None: every token, [rows, d_vocab]."""
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    if answers is None:
        logits = model.unembed(resid)
    else:
        logits = resid @ model.W_U[:, answers] + model.b_U[answers]
    return apply_softcap(logits, model.cfg.output_logits_soft_cap)


def batches(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def capture_hook(store: list[torch.Tensor]):
    def hook(activation: torch.Tensor, hook) -> None:
        store.append(activation.detach())
    return hook


@torch.no_grad()
def word_activations(model: HookedTransformer, prompts: PromptSet, hook_name: str, layer: int,
                     batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """[n_words, d_model] activation at `hook_name` on each word's token. Only the prefix and the word
    run (the tail cannot influence the word position), and only up to the hook's layer."""
    out = np.zeros((len(prompts), model.cfg.d_model), dtype=np.float32)
    groups = prompts.groups()
    if all(len(members) == 1 for _, members in groups):
        return fresh_word_activations(model, prompts, hook_name, layer, max(1, batch_size // 8), progress)
    for prefix_id, members in tqdm(groups, desc=f"word activations {hook_name}", disable=not progress):
        cache = prefix_cache(model, prompts.prefixes[prefix_id], stop_at_layer=layer + 1)
        for chunk in batches(members, batch_size):
            tokens = torch.tensor([[prompts.words[i].token_id] for i in chunk], device=model.cfg.device)
            store: list[torch.Tensor] = []
            model.run_with_hooks(tokens, past_kv_cache=expanded(cache, len(chunk)), stop_at_layer=layer + 1,
                                 attention_mask=torch.ones_like(tokens), fwd_hooks=[(hook_name, capture_hook(store))])
            out[chunk] = store[0][:, -1].float().cpu().numpy()
    return out


@torch.no_grad()
def fresh_word_activations(model: HookedTransformer, prompts: PromptSet, hook_name: str, layer: int, batch_size: int,
                           progress: bool) -> np.ndarray:
    """Every word with its own prefix: whole prompts (prefix + word) batched by length."""
    out = np.zeros((len(prompts), model.cfg.d_model), dtype=np.float32)
    lengths = np.array([len(prompts.prefixes[p]) for p in prompts.prefix_index])
    chunks = [chunk for length in np.unique(lengths) for chunk in batches(np.flatnonzero(lengths == length), batch_size)]
    for chunk in tqdm(chunks, desc=f"word activations {hook_name} (fresh prefixes)", disable=not progress):
        tokens = torch.tensor([prompts.prompt_ids(i)[: lengths[i] + 1] for i in chunk], device=model.cfg.device)
        store: list[torch.Tensor] = []
        model.run_with_hooks(tokens, stop_at_layer=layer + 1, attention_mask=torch.ones_like(tokens),
                             fwd_hooks=[(hook_name, capture_hook(store))])
        out[chunk] = store[0][:, -1].float().cpu().numpy()
    return out


@torch.no_grad()
def answer_logits(model: HookedTransformer, prompts: PromptSet, indices: np.ndarray, letter_ids: list[int],
                  batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """[len(indices), 26] the model's logits for " A".." Z" after each full prompt (the model check)."""
    out = np.zeros((len(indices), len(letter_ids)), dtype=np.float32)
    position = {int(i): row for row, i in enumerate(indices)}
    members_by_prefix: dict[int, list[int]] = {}
    for i in indices:
        members_by_prefix.setdefault(int(prompts.prefix_index[i]), []).append(int(i))
    suffix_len = 1 + len(prompts.tail_ids)
    answers = torch.tensor(letter_ids, device=model.cfg.device)
    for prefix_id, members in tqdm(members_by_prefix.items(), desc="model check", disable=not progress):
        cache = prefix_cache(model, prompts.prefixes[prefix_id], stop_at_layer=None)
        for chunk in batches(np.array(members), batch_size):
            tokens = torch.tensor([[prompts.words[i].token_id] + prompts.tail_ids for i in chunk], device=model.cfg.device)
            resid = model(tokens, past_kv_cache=expanded(cache, len(chunk)), attention_mask=torch.ones_like(tokens),
                          stop_at_layer=model.cfg.n_layers)  # [chunk, suffix, d_model]: the 26 answers alone below
            assert tokens.shape[1] == suffix_len
            rows = [position[int(i)] for i in chunk]
            out[rows] = final_logits(model, resid[:, -1], answers).float().cpu().numpy()
    return out
