"""The paper's integrated-gradients ablation metric on a planted case with a known answer.

A one-layer model whose residual stream is its token embedding (attention and MLP write nothing)
and whose unembedding reads the letter from residual dimension LETTER_DIM. The word token writes
TOKEN_DIM (its identity) and LETTER_DIM (its first letter). The SAE's ABSORBER latent reads the
token identity and writes the letter direction, so removing it provably flips the letter logit:
its attribution must be the top one, and it only counts as absorption when its decoder has probe
cosine >= 0.025.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.absorption.ablation import AblationMetricConfig, ablation_attributions, letter_metric, paper_absorption

D_MODEL, D_SAE, D_VOCAB = 16, 8, 60
WORD, TOKEN_DIM, LETTER_DIM, OTHER_DIM = 7, 0, 1, 2
ABSORBER = 3
LETTER_IDS = list(range(30, 56))  # " A".." Z" stand-ins
CORRECT = 18  # 's'
HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=1, d_model=D_MODEL, n_ctx=16, d_head=4, n_heads=4, d_mlp=32, d_vocab=D_VOCAB,
                                  act_fn="relu", normalization_type=None, device="cpu", seed=0)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
        model.W_pos.zero_()
        model.W_E.copy_(torch.randn(D_VOCAB, D_MODEL) * 0.1)
        model.W_E[:, [TOKEN_DIM, LETTER_DIM]] = 0.0
        model.W_E[WORD, TOKEN_DIM] = 10.0
        model.W_E[WORD, LETTER_DIM] = 5.0
        model.W_U.zero_()
        model.b_U.zero_()
        model.W_U[LETTER_DIM, LETTER_IDS[CORRECT]] = 2.0
        model.b_U[LETTER_IDS[CORRECT]] = -4.0  # the letter wins only thanks to the letter direction
    return model


@pytest.fixture(scope="module")
def sae() -> StandardSAE:
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_MODEL, D_SAE) * 0.1)
        sae.b_enc.fill_(-100.0)  # every other latent stays silent
        sae.W_enc[:, ABSORBER] = 0.0
        sae.W_enc[TOKEN_DIM, ABSORBER] = 1.0
        sae.b_enc[ABSORBER] = -5.0  # fires with 5.0 on WORD
        directions = torch.nn.functional.normalize(torch.randn(D_SAE, D_MODEL), dim=-1)
        directions[:, LETTER_DIM] = 0.0
        sae.W_dec.copy_(torch.nn.functional.normalize(directions, dim=-1))
        sae.W_dec[ABSORBER] = 0.0
        sae.W_dec[ABSORBER, LETTER_DIM] = 1.0
        sae.b_dec.zero_()
    return sae


def metric_for(model, tokens, ablate: bool, sae) -> float:
    def remove_absorber(activation, hook):
        return activation - sae.W_dec[ABSORBER] * sae.encode(activation)[..., ABSORBER : ABSORBER + 1]
    hooks = [(HOOK, remove_absorber)] if ablate else []
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return float(letter_metric(logits[:, -1], torch.tensor(LETTER_IDS), torch.tensor([CORRECT]))[0])


def test_removing_the_planted_latent_flips_the_letter(model, sae):
    tokens = torch.tensor([[1, 2, WORD]])
    assert metric_for(model, tokens, ablate=False, sae=sae) > 0
    assert metric_for(model, tokens, ablate=True, sae=sae) < 0


@pytest.mark.parametrize("prefix", [[], [1, 2, 3, 4]])
def test_planted_latent_is_the_top_absorber(model, sae, prefix):
    attributions, codes = ablation_attributions(model, sae, HOOK, prefix, torch.tensor([[WORD]]), torch.tensor([CORRECT]),
                                                LETTER_IDS, AblationMetricConfig())
    assert codes[0, ABSORBER] == pytest.approx(5.0, abs=1e-4)
    # m is linear in z_ABSORBER with slope 2, so every alpha step gives 2 * (0 - 5) = -10.
    assert attributions[0, ABSORBER] == pytest.approx(-10.0, abs=1e-3)
    assert np.abs(np.delete(attributions[0], ABSORBER)).max() < 1e-6
    probe = np.zeros(D_MODEL)
    probe[LETTER_DIM] = 1.0
    decoder_cos = sae.W_dec.detach().numpy() @ probe
    result = paper_absorption(attributions, codes, split_latents=[0], decoder_cos=decoder_cos)
    assert result.is_absorption.tolist() == [True]
    assert result.top_latents[0, 0] == ABSORBER
    assert result.top_attributions[0, 0] == pytest.approx(-10.0, abs=1e-3)


def test_top_latent_without_probe_cosine_is_not_absorption(model, sae):
    attributions, codes = ablation_attributions(model, sae, HOOK, [], torch.tensor([[WORD]]), torch.tensor([CORRECT]),
                                                LETTER_IDS, AblationMetricConfig())
    probe = np.zeros(D_MODEL)
    probe[OTHER_DIM] = 1.0  # orthogonal to the absorber's decoder
    decoder_cos = sae.W_dec.detach().numpy() @ probe
    assert abs(decoder_cos[ABSORBER]) < 1e-6
    result = paper_absorption(attributions, codes, split_latents=[0], decoder_cos=decoder_cos)
    assert result.top_latents[0, 0] == ABSORBER and not result.is_absorption[0]


def test_paper_rule_edges():
    cos = np.full(4, 0.5)
    codes = np.zeros((4, 4))
    attributions = np.array([
        [-3.0, -1.5, 0.0, 0.0],  # gap 1.5 -> absorption
        [-3.0, -2.5, 0.0, 0.0],  # gap 0.5 -> not
        [0.5, 0.2, 0.1, 0.0],    # nothing negative -> not
        [-3.0, 0.0, 0.0, 0.0],
    ])
    codes[3, 2] = 1.0  # a split latent fires on the last word -> not
    result = paper_absorption(attributions, codes, split_latents=[2], decoder_cos=cos)
    assert result.is_absorption.tolist() == [True, False, False, False]


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"])
@pytest.mark.parametrize("prefix", [[], [3, 9, 4, 12, 5, 1]])
def test_resumed_attributions_equal_the_whole_model_per_step(hook, prefix):
    """ablation_attributions runs to the hook once per word and only the later blocks per alpha step, reading the 26
    answers' logits alone; spliced_attributions (the first implementation) splices the SAE into the whole model per
    step. On a random Llama-like model (RMS norm, rotary positions after a cached prefix, grouped-query attention,
    gated MLP, logit soft cap) and a random SAE, both give the same attributions and codes."""
    from precompute.absorption.ablation import spliced_attributions

    cfg = HookedTransformerConfig(n_layers=3, d_model=D_MODEL, n_ctx=32, d_head=4, n_heads=4, n_key_value_heads=2,
                                  d_mlp=32, d_vocab=D_VOCAB, act_fn="silu", gated_mlp=True, normalization_type="RMS",
                                  positional_embedding_type="rotary", rotary_dim=4, output_logits_soft_cap=20.0,
                                  device="cpu", seed=1)
    model = HookedTransformer(cfg)
    torch.manual_seed(1)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, dtype="float32", device="cpu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_MODEL, D_SAE))
        sae.W_dec.copy_(torch.randn(D_SAE, D_MODEL) * 0.3)
        sae.b_enc.zero_()
    suffixes = torch.tensor([[7, 20, 21], [8, 20, 21], [11, 20, 21]])  # word, then the template's tail
    correct = torch.tensor([2, 18, 5])
    config = AblationMetricConfig()
    ours, codes = ablation_attributions(model, sae, hook, prefix, suffixes, correct, LETTER_IDS, config)
    reference, reference_codes = spliced_attributions(model, sae, hook, prefix, suffixes, correct, LETTER_IDS, config)
    assert (codes > 0).sum() >= 6, "latents fire, so there is something to attribute"
    assert np.abs(reference).max() > 1e-2
    np.testing.assert_allclose(codes, reference_codes, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-5 * max(1.0, np.abs(reference).max()))
