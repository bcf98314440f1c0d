"""The embedded SmolLM2 as a HookedTransformer must match the Hugging Face model it came from."""

from __future__ import annotations

import pytest
import torch

from precompute.loading.model import EMBEDDED_MODEL_NAME, load_model, load_smollm2_hf

PROMPTS = [
    "The snake slithered across the short grass.",
    "short has the first letter: S\nsnake has the first letter:",
    "In the beginning God created the heaven and the earth.",
]


@pytest.fixture(scope="module")
def models():
    return load_model(EMBEDDED_MODEL_NAME), *load_smollm2_hf()


@torch.no_grad()
def test_hooked_transformer_matches_hf_logprobs(models):
    model, hf_model, tokenizer = models
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert torch.equal(ids, model.to_tokens(prompt, prepend_bos=False)), "same tokenization"
        ours = model(ids).log_softmax(-1)
        theirs = hf_model(ids).logits.log_softmax(-1)
        assert (ours - theirs).abs().max().item() < 1e-3
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


def test_config_is_smollm2(models):
    model, *_ = models
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_mlp) == (30, 576, 9, 3, 1536)
    assert cfg.normalization_type in ("RMS", "RMSPre") and cfg.positional_embedding_type == "rotary"


@torch.no_grad()
def test_hook_stops_early_and_position_zero_is_a_sink(models):
    model, *_ = models
    tokens = model.to_tokens("Sparse autoencoders find interpretable features in language models.", prepend_bos=False)
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.6.hook_resid_post"], stop_at_layer=7)
    norms = cache["blocks.6.hook_resid_post"][0].norm(dim=-1)
    assert norms[0] > 3 * norms[1:].mean(), "position 0 carries the attention-sink norm we exclude"


@torch.no_grad()
def test_the_cached_conversion_is_the_same_model(models):
    """The first load converts the GGUF file and caches the result; a later process loads the cache (2 s instead of
    20, bench/live_latency.py): same weights, same logits, same tokenizer."""
    from precompute.loading.model import cache_dir, converted_model_path, load_converted

    model, *_ = models
    path = converted_model_path(torch.float32)
    assert path.exists(), "the first load caches its conversion"
    cached = load_converted(path, cache_dir() / "smollm2-tokenizer", "cpu")
    ids = model.to_tokens(PROMPTS[1], prepend_bos=False)
    assert torch.equal(ids, cached.to_tokens(PROMPTS[1], prepend_bos=False))
    assert (model(ids) - cached(ids)).abs().max().item() < 1e-5


@torch.no_grad()
def test_weights_in_forward_layout_give_bitwise_identical_outputs_without_copies(models):
    """load_model re-stores the MLP, attention and unembedding weights so TransformerLens' per-forward
    `.T.contiguous()` and rearranges are views (a 40-token generation went from 6.0 s to 1.8 s on one thread):
    the values and every output stay bitwise the same as the model as converted."""
    from precompute.loading.model import cache_dir, converted_model_path, load_converted

    model, *_ = models
    as_converted = load_converted(converted_model_path(torch.float32), cache_dir() / "smollm2-tokenizer", "cpu")
    for param in as_converted.parameters():  # the plain row-major layout the conversion produces
        param.data = param.data.contiguous()
    block, plain_block = model.blocks[3], as_converted.blocks[3]
    assert block.mlp.W_in.T.is_contiguous() and model.unembed.W_U.T.is_contiguous()
    assert not plain_block.mlp.W_in.T.is_contiguous(), "the model as converted copies on every forward"
    assert block.attn.W_Q.transpose(1, 2).is_contiguous() and block.attn.W_O.permute(2, 0, 1).is_contiguous()
    for name, param in model.named_parameters():
        assert torch.equal(param, as_converted.get_parameter(name)), name
    ids = model.to_tokens(PROMPTS[1], prepend_bos=False)
    assert torch.equal(model(ids), as_converted(ids))
    one = model.generate(ids, max_new_tokens=4, do_sample=False, verbose=False, use_past_kv_cache=True)
    assert torch.equal(one, as_converted.generate(ids, max_new_tokens=4, do_sample=False, verbose=False,
                                                  use_past_kv_cache=True))


def test_the_preflight_knows_the_embedded_models_width_and_vocabulary(models):
    """precompute/loading/preflight.py checks SAE widths and corpus token ids against constants, not the model."""
    from precompute.loading.preflight import EMBEDDED_DIMS

    model, *_ = models
    assert (EMBEDDED_DIMS.d_model, EMBEDDED_DIMS.d_vocab) == (model.cfg.d_model, model.cfg.d_vocab)


def test_the_conversion_cache_key_follows_the_gguf_content_not_its_install_time(tmp_path):
    """A fresh install of the same package (same bytes, new modification time) reuses the cached conversion; other
    bytes get another key; saving a conversion removes the stale ones of its dtype (each is 650 MB)."""
    import os

    from precompute.loading.model import file_fingerprint, remove_stale_conversions

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(os.urandom(3 << 20))
    first = file_fingerprint(gguf)
    os.utime(gguf, (1, 1))
    assert file_fingerprint(gguf) == first
    gguf.write_bytes(gguf.read_bytes()[:-1] + b"\x00")
    assert file_fingerprint(gguf) != first

    cache = tmp_path / "cache"
    cache.mkdir()
    names = ["smollm2-hooked-v1-1-a-float32.pt", "smollm2-hooked-v1-2-b-float32.pt", "smollm2-hooked-v1-2-b-float16.pt"]
    for name in names:
        (cache / name).write_bytes(b"x")
    remove_stale_conversions(cache / names[1])
    assert sorted(p.name for p in cache.iterdir()) == sorted(names[1:])
