"""Linears through oneDNN with packed weights (precompute/loading/packed.py): the same numbers as torch's own kernels
to float32 rounding, for the model's forward, its input gradients and an SAE; only owned weights are packed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sae_lens import StandardSAE, StandardSAEConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.loading.model import store_weights_in_forward_layout
from precompute.loading.packed import ENV_SWITCH, forget, packed_count, packed_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN linear")


def llama_like(seed: int = 3) -> HookedTransformer:
    """RMS norm, rotary, grouped-query attention, gated MLP: the embedded model's architecture, tiny."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=16, d_head=8, n_heads=4, n_key_value_heads=2, d_mlp=64,
                                  d_vocab=50, act_fn="silu", gated_mlp=True, normalization_type="RMS",
                                  positional_embedding_type="rotary", rotary_dim=8, device="cpu", seed=seed)
    return store_weights_in_forward_layout(HookedTransformer(cfg))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def plain_and_packed(model: HookedTransformer, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits through torch's own kernels, then inside packed_linears."""
    with torch.no_grad():
        reference = model(tokens)
        with packed_linears(model):
            return reference, model(tokens)


def test_the_forward_pass_gives_the_same_logits_through_packed_weights():
    model = llama_like()
    reference, packed = plain_and_packed(model, torch.randint(0, 50, (5, 9)))
    # q, k, v, o, gate, in, out per block, and the unembedding: every weight went through oneDNN
    assert packed_count(model) == 7 * 2 + 1
    assert relative(packed, reference) < 1e-5


def test_input_gradients_flow_through_packed_weights():
    model = llama_like()
    x = torch.randn(3, 6, 32, requires_grad=True)
    (reference,) = torch.autograd.grad(model.blocks[1](x).pow(2).sum(), x)
    with packed_linears(model):
        out = model.blocks[1](x)
        (packed,) = torch.autograd.grad(out.pow(2).sum(), x)
    assert relative(packed, reference) < 1e-5


def test_an_sae_encodes_and_decodes_the_same_through_packed_weights():
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=128, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(32, 128))
        sae.W_dec.copy_(torch.randn(128, 32))
        x = torch.randn(40, 32)
        codes, decoded = sae.encode(x), sae.decode(sae.encode(x))
        with packed_linears(sae):
            packed_codes, packed_decoded = sae.encode(x), sae.decode(sae.encode(x))
    assert packed_count(sae) == 2  # x @ W_enc, codes @ W_dec
    assert relative(packed_codes, codes) < 1e-5 and relative(packed_decoded, decoded) < 1e-5


def test_a_weight_written_in_place_is_packed_again():
    model = llama_like()
    tokens = torch.randint(0, 50, (2, 5))
    with torch.no_grad(), packed_linears(model):
        before = model(tokens)
        model.blocks[0].mlp.W_out.mul_(3.0)  # in place: a new version of the same storage
        after = model(tokens)
    with torch.no_grad():
        reference = model(tokens)
    assert relative(after, before) > 1e-3, "the edit changes the output"
    assert relative(after, reference) < 1e-5, "and the packed weights follow it"


def test_one_model_is_packed_once_for_every_module_set_it_is_used_with():
    """The packs belong to the parameters: the model with or without an SAE beside it reuses the same ones."""
    model = llama_like()
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=16, dtype="float32", device="cpu"))
    tokens = torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        with packed_linears(model):
            model(tokens)
        first = packed_count(model)
        with packed_linears(model, sae):
            model(tokens)
    assert packed_count(model) == first == 15


def test_forget_drops_packs_made_stale_by_an_edit_through_data():
    """`.data` edits keep the version, so the packs cannot see them: forget() drops them."""
    model = llama_like()
    tokens = torch.randint(0, 50, (2, 5))
    with torch.no_grad(), packed_linears(model):
        model(tokens)
    model.blocks[0].mlp.W_out.data.mul_(3.0)
    forget(model)
    reference, packed = plain_and_packed(model, tokens)
    assert relative(packed, reference) < 1e-5


def test_tensors_the_modules_do_not_own_run_through_torch_itself():
    model = llama_like()
    x, w, b = torch.randn(4, 32), torch.randn(7, 32), torch.randn(7)
    with packed_linears(model):
        out, product = F.linear(x, w, b), x @ w.T
    assert torch.equal(out, F.linear(x, w, b)) and torch.equal(product, x @ w.T)
    assert packed_count(model) == 0


def test_the_switch_turns_packing_off(monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "0")
    model = llama_like()
    reference, out = plain_and_packed(model, torch.randint(0, 50, (2, 5)))
    assert torch.equal(out, reference) and packed_count(model) == 0
