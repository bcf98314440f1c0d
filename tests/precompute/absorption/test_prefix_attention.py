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
