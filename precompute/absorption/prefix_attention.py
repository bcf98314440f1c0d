"""Attention of a batch of suffixes against one shared, cached prefix, without copying the prefix per row.

TransformerLens runs a cached prefix by concatenating its keys/values to every row's (`TransformerLensKeyValueCacheEntry.
append`), re-applying the rotary embedding to all of them, and for grouped-query attention repeating them per query
head: for 128 one-token words after an 81-token prefix that is ~60 MB of copies per layer, two thirds of the batch's
time (`python bench/packed_linear.py`: that batch 0.072 -> 0.023 s here, the model check's 64 x 6 tokens after the same
prefix 0.361 -> 0.254 s). Here each layer's prefix keys are
rotated once per prefix, and the scores and the weighted values are two products, prefix part (no batch dimension)
and suffix part (causal), joined by one softmax. The same attention to float32 rounding
(tests/precompute/absorption/test_prefix_attention.py).

`shared_prefix_attention(model)` swaps the attention layers' forward for the block; a layer falls back to
TransformerLens's own forward when its input has no `SharedPrefixEntry`, when the model uses a feature this path
does not implement (`supported`), or when a hook is attached inside the attention layer.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities.activation_functions import apply_softcap


@dataclass
class SharedPrefixEntry(TransformerLensKeyValueCacheEntry):
    """A batch-1 prefix entry seen as `batch` rows (past_keys/values are expanded views, for TransformerLens's shape
    checks); `base` is the batch-1 entry, which keeps the rotated keys once computed."""

    base: TransformerLensKeyValueCacheEntry | None = None


def shared_view(cache: TransformerLensKeyValueCache, batch_size: int) -> TransformerLensKeyValueCache:
    """A batch-1 frozen prefix cache seen by `batch_size` rows, without copies."""
    entries = [SharedPrefixEntry(e.past_keys.expand(batch_size, -1, -1, -1), e.past_values.expand(batch_size, -1, -1, -1),
                                 frozen=True, base=e) for e in cache.entries]
    return TransformerLensKeyValueCache(entries, cache.previous_attention_mask.expand(batch_size, -1), frozen=True)


def supported(model: HookedTransformer) -> bool:
    """The attention variants this path computes exactly like TransformerLens (others use its own forward)."""
    cfg = model.cfg
    return (cfg.positional_embedding_type in ("rotary", "standard") and cfg.attention_dir == "causal"
            and not cfg.use_attn_result and not cfg.use_split_qkv_input and not cfg.use_attn_in
            and not getattr(cfg, "use_logn_attn", False) and not getattr(cfg, "use_dynamic_ntk_rope", False)
            and not getattr(cfg, "use_attention_sinks", False) and getattr(cfg, "clip_qkv", None) is None
            and not getattr(cfg, "load_in_4bit", False) and not getattr(cfg, "ungroup_grouped_query_attention", False)
            and cfg.original_architecture not in ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM"))


def hooked_inside(attn: torch.nn.Module) -> bool:
    """A hook attached inside the layer, or a hook point replaced by another module (e.g. an SAE spliced at hook_z):
    this path calls none of them, so TransformerLens's own forward must run."""
    for name, child in attn.named_children():
        if name.startswith("hook_") and not isinstance(child, HookPoint):
            return True
    return any(len(m._forward_hooks) or len(m._forward_pre_hooks) or len(m._backward_hooks)
               for m in attn.modules() if isinstance(m, HookPoint))


def prefix_keys(attn, entry: SharedPrefixEntry) -> tuple[torch.Tensor, torch.Tensor]:
    """[P, n_kv, d_head] the prefix's keys (rotated where the model is rotary, once per prefix) and values."""
    base = entry.base
    keys = base.__dict__.get("_rotated_keys")
    if keys is None:
        keys = base.past_keys
        if attn.cfg.positional_embedding_type == "rotary":
            keys = attn.apply_rotary(keys, 0, None)  # positions 0..P-1, as TransformerLens rotates them
        base.__dict__["_rotated_keys"] = keys
    return keys[0], base.past_values[0]


def shared_prefix_forward(attn, query_input, key_input, value_input, past_kv_cache_entry=None,
                          additive_attention_mask=None, attention_mask=None, position_bias=None):
    """AbstractAttention.forward for rows that share one prefix (see the module docstring)."""
    entry = past_kv_cache_entry
    local = getattr(attn, "attn_type", "global") == "local"  # a sliding window masks old keys: not done here
    if (not isinstance(entry, SharedPrefixEntry) or additive_attention_mask is not None or position_bias is not None
            or local or hooked_inside(attn) or (attention_mask is not None and not bool(attention_mask.all()))):
        return attn._shared_prefix_original_forward(query_input, key_input, value_input, entry,
                                                    additive_attention_mask, attention_mask, position_bias)
    q, k, v = attn.calculate_qkv_matrices(query_input, key_input, value_input)  # [b, s, h or kv, d_head]
    n_prefix = entry.base.past_keys.shape[1]
    if attn.cfg.positional_embedding_type == "rotary":
        q = attn.apply_rotary(q, n_prefix, None)  # positions P..P+s-1
        k = attn.apply_rotary(k, n_prefix, None)
    prefix_k, prefix_v = prefix_keys(attn, entry)  # [P, kv, d_head]
    batch, n_new, n_heads, d_head = q.shape
    n_kv = k.shape[2]
    group = n_heads // n_kv
    q5 = q.reshape(batch, n_new, n_kv, group, d_head)  # query heads grouped by their key/value head
    # scores [b, kv, g, s, P] against the prefix (one product, no batch copy) and [b, kv, g, s, s] among the suffix
    on_prefix = torch.einsum("bskgd,pkd->bkgsp", q5, prefix_k) / attn.attn_scale
    on_suffix = torch.einsum("bskgd,btkd->bkgst", q5, k) / attn.attn_scale
    on_prefix = apply_softcap(on_prefix, attn.cfg.attn_scores_soft_cap)
    on_suffix = apply_softcap(on_suffix, attn.cfg.attn_scores_soft_cap)
    causal = torch.ones(n_new, n_new, dtype=torch.bool, device=q.device).tril()
    on_suffix = on_suffix.masked_fill(~causal, float("-inf"))
    pattern = F.softmax(torch.cat([on_prefix, on_suffix], dim=-1), dim=-1)  # [b, kv, g, s, P + s]
    pattern = pattern.to(v.dtype)
    z = (torch.einsum("bkgsp,pkd->bskgd", pattern[..., :n_prefix], prefix_v)
         + torch.einsum("bkgst,btkd->bskgd", pattern[..., n_prefix:], v))  # [b, s, kv, g, d_head]
    z = z.reshape(batch, n_new, n_heads * d_head)  # heads in TransformerLens's order: kv head major, then group
    w = einops.rearrange(attn.W_O, "head_index d_head d_model -> d_model (head_index d_head)")
    return F.linear(z, w, attn.b_O)


@contextmanager
def shared_prefix_attention(model: HookedTransformer) -> Iterator[None]:
    """Within the block, attention layers given a `shared_view` cache attend to the prefix without copying it."""
    if not supported(model):
        yield
        return
    # layers already swapped (a block inside another, or another thread's) are left to whoever swapped them
    layers = [block.attn for block in model.blocks if "_shared_prefix_original_forward" not in block.attn.__dict__]
    for attn in layers:
        attn._shared_prefix_original_forward = attn.forward
        attn.forward = types.MethodType(shared_prefix_forward, attn)
    try:
        yield
    finally:
        for attn in layers:
            del attn.forward  # the class's forward again
            del attn._shared_prefix_original_forward
