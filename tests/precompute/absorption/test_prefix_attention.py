"""Suffixes attending to a shared cached prefix without copies (precompute/absorption/prefix_attention.py): the same
logits as TransformerLens's own cached path and as running each whole prompt, on Llama-like and GPT-2-like models."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.absorption.activations import expanded, prefix_cache
from precompute.absorption.prefix_attention import SharedPrefixEntry, shared_prefix_attention, supported

PREFIX = [3, 9, 4, 12, 5, 1, 7]
SUFFIXES = torch.tensor([[7, 20, 21], [8, 20, 21], [11, 20, 21], [30, 2, 40]])


def llama_like() -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=3, d_model=32, n_ctx=32, d_head=8, n_heads=4, n_key_value_heads=2,
                                  d_mlp=64, d_vocab=50, act_fn="silu", gated_mlp=True, normalization_type="RMS",
                                  positional_embedding_type="rotary", rotary_dim=8, output_logits_soft_cap=20.0,
                                  attn_scores_soft_cap=30.0, device="cpu", seed=2)
    return HookedTransformer(cfg)


def gpt2_like() -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=50,
                                  act_fn="gelu", normalization_type="LN", device="cpu", seed=4)
    return HookedTransformer(cfg)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("build", [llama_like, gpt2_like])
def test_shared_prefix_attention_gives_the_whole_prompt_s_logits(build):
    model = build()
    assert supported(model)
    cache = prefix_cache(model, PREFIX, stop_at_layer=None)
    ones = torch.ones_like(SUFFIXES)
    with torch.no_grad():
        whole = model(torch.cat([torch.tensor([PREFIX] * len(SUFFIXES)), SUFFIXES], dim=1))[:, len(PREFIX):]
        transformer_lens_cached = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones)
        with shared_prefix_attention(model):
            shared = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones)
    assert relative(transformer_lens_cached, whole) < 1e-5
    assert relative(shared, whole) < 1e-5
    assert relative(shared, transformer_lens_cached) < 1e-5


def test_the_shared_path_runs_and_keeps_the_prefix_uncopied(monkeypatch):
    """The swapped forward is what runs (TransformerLens's append, which concatenates the prefix to every row, is never
    called), and the original forwards come back after the block."""
    model = llama_like()
    cache = prefix_cache(model, PREFIX, stop_at_layer=None)
    originals = [block.attn.forward for block in model.blocks]
    calls = []
    monkeypatch.setattr(SharedPrefixEntry, "append", lambda self, k, v: calls.append(1) or (k, v))
    with torch.no_grad(), shared_prefix_attention(model):
        model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=torch.ones_like(SUFFIXES))
    assert calls == []
    assert [block.attn.forward for block in model.blocks] == originals


def test_a_hook_inside_attention_gets_transformer_lens_s_own_forward():
    model = llama_like()
    cache = prefix_cache(model, PREFIX, stop_at_layer=None)
    seen = []
    ones = torch.ones_like(SUFFIXES)
    with torch.no_grad(), shared_prefix_attention(model):
        model.run_with_hooks(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones,
                             fwd_hooks=[("blocks.1.attn.hook_pattern", lambda pattern, hook: seen.append(pattern.shape))])
    assert seen == [torch.Size([len(SUFFIXES), 4, 3, len(PREFIX) + 3])]


def test_gradients_through_the_shared_path_match():
    model = llama_like()
    cache = prefix_cache(model, PREFIX, stop_at_layer=None)
    ones = torch.ones_like(SUFFIXES)
    resid = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones, stop_at_layer=1).detach()

    def gradient() -> torch.Tensor:
        x = resid.clone().requires_grad_(True)
        view = expanded(cache, len(SUFFIXES))
        # resuming at a layer takes the whole mask, the prefix's positions too (as the paper metric passes it)
        out = model(x, start_at_layer=1, past_kv_cache=view, attention_mask=view.append_attention_mask(ones))
        (grad,) = torch.autograd.grad(out[:, -1, :5].sum(), x)
        return grad

    reference = gradient()
    with shared_prefix_attention(model):
        shared = gradient()
    assert relative(shared, reference) < 1e-5


def test_a_block_inside_another_keeps_the_outer_swap():
    model = llama_like()
    cache = prefix_cache(model, PREFIX, stop_at_layer=None)
    ones = torch.ones_like(SUFFIXES)
    with torch.no_grad():
        reference = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones)
        with shared_prefix_attention(model):
            with shared_prefix_attention(model):
                inner = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones)
            outer = model(SUFFIXES, past_kv_cache=expanded(cache, len(SUFFIXES)), attention_mask=ones)
    assert relative(inner, reference) < 1e-5 and relative(outer, reference) < 1e-5
    assert all("forward" not in block.attn.__dict__ for block in model.blocks)


def test_kept_prefix_caches_compute_each_prefix_once_and_serve_the_same_tensors(monkeypatch):
    from precompute.absorption import activations

    model = llama_like()
    computed: list[tuple[int, int | None]] = []
    compute = activations.computed_prefix_cache

    def counting(model, prefix_ids, stop_at_layer):
        computed.append((len(prefix_ids), stop_at_layer))
        return compute(model, prefix_ids, stop_at_layer)

    monkeypatch.setattr(activations, "computed_prefix_cache", counting)
    fresh_whole = compute(model, PREFIX, None)
    with activations.kept_prefix_caches(model) as store:
        shallow = prefix_cache(model, PREFIX, stop_at_layer=2)  # the word activations at a layer-1 hook
        assert prefix_cache(model, PREFIX, stop_at_layer=1) is shallow  # a deeper cache serves a shallower need
        whole = prefix_cache(model, PREFIX, stop_at_layer=None)  # the model check: computed, supersedes the shallow
        with activations.kept_prefix_caches(model) as inner:  # nested blocks share the store
            assert inner is store
            assert prefix_cache(model, PREFIX, stop_at_layer=2) is whole
        assert prefix_cache(model, PREFIX, stop_at_layer=None) is whole  # the paper metric of every SAE
        prefix_cache(model, PREFIX[:3], stop_at_layer=None)
        assert computed == [(7, 2), (7, None), (3, None)]
        assert (store.misses, store.hits) == (3, 3)
        assert len(store.caches) == 2  # the shallow cache was dropped for the whole one
    for kept, fresh in zip(whole.entries, fresh_whole.entries):  # what a rerun computes, bit for bit
        assert torch.equal(kept.past_keys, fresh.past_keys) and torch.equal(kept.past_values, fresh.past_values)
    prefix_cache(model, PREFIX, stop_at_layer=None)  # outside the block nothing is kept
    assert len(computed) == 4


def test_kept_prefix_caches_drop_the_least_recently_used_past_their_budget():
    from precompute.absorption import activations

    model = gpt2_like()
    one = activations.cache_bytes(activations.computed_prefix_cache(model, PREFIX, None))
    with activations.kept_prefix_caches(model, max_bytes=2 * one) as store:
        first = prefix_cache(model, PREFIX, None)
        prefix_cache(model, [1] + PREFIX[1:], None)
        assert prefix_cache(model, PREFIX, None) is first  # used again: now the most recent
        prefix_cache(model, [2] + PREFIX[1:], None)  # over budget: the second prefix goes
        assert store.n_bytes <= 2 * one and len(store.caches) == 2
        assert prefix_cache(model, PREFIX, None) is first
        assert store.misses == 3
        prefix_cache(model, [1] + PREFIX[1:], None)
        assert store.misses == 4
