"""`--protocol saebench` (precompute/absorption/saebench_protocol.py): SAEBench 0.6.0's absorption eval with our
activations. Here, in the project venv (CI): our forward pass gives SAEBench's activations bit for bit, the word
sample, the config's defaults, the command's message without sae-bench. In the SAEBench peer venv, when it is
set up (bash bench/peers/setup.sh saebench; sae-bench cannot join the project venv: it needs numpy < 2 and
datasets < 4): the whole eval on a tiny model with our activations equals the same eval with SAEBench's own
model calls, and its JSON loads with SAEBench's own output model (saebench_peer_check.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.absorption import saebench_protocol as sp

HOOK = "blocks.1.hook_resid_post"


def tiny_model(d_vocab: int, tokenizer=None) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=3, d_model=16, d_head=4, n_heads=4, d_mlp=32, n_ctx=64, d_vocab=d_vocab,
                                  act_fn="gelu", normalization_type="LN", default_prepend_bos=False)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.eval()
    return model


@pytest.fixture(scope="module")
def tokenizer():
    from precompute.loading.model import load_tokenizer

    return load_tokenizer()


@pytest.mark.parametrize("pos", [-6, -1])
@pytest.mark.parametrize("batch_size", [4, 64])
def test_word_position_activations_are_run_with_cache(pos, batch_size):
    """Bit for bit when the word is the last token. Before it (SAEBench's -6) only the positions up to the word
    run: on this tiny model the shorter matrix products can differ in the last bit (on SmolLM2 they were equal
    bit for bit, docs/saebench_parity.md)."""
    model = tiny_model(50)
    tokens = torch.randint(0, 50, (23, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model.run_with_cache(tokens, names_filter=[HOOK])[1][HOOK][:, pos]
    ours = sp.word_position_activations(model, tokens, HOOK, layer=1, pos=pos, batch_size=batch_size)
    assert ours.dtype == torch.float32 and ours.shape == (23, 16)
    if pos == -1:
        assert torch.equal(ours, reference)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_positions_count_from_the_end():
    with pytest.raises(ValueError, match="negative"):
        sp.word_position_activations(tiny_model(50), torch.zeros((2, 8), dtype=torch.long), HOOK, 1, pos=3)


def test_the_calculators_model_reads_our_activations_where_saebench_reads_its_own(tokenizer):
    """What SAEBench's absorption calculator and probe-activation step read (`[:, pos]` of the hook's cache) is
    what the real model's run_with_cache gives for the same prompt strings."""
    model = tiny_model(len(tokenizer), tokenizer)
    words = [" cat", " dog", " bird", " fish", " cow"]
    prompts = ["\n" + " dog has the first letter: D\n" + w + " has the first letter:" for w in words]
    ours = sp.OurActivationsModel(model, layer=1, pos=-6, batch_size=2)
    with torch.no_grad():
        reference = model.run_with_cache(prompts, names_filter=[HOOK])[1][HOOK][:, -6]
    cache = ours.run_with_cache(prompts, names_filter=[HOOK])[1][HOOK]
    assert cache.shape == (5, 6, 16)
    torch.testing.assert_close(cache[:, -6], reference, rtol=0, atol=1e-5)
    assert ours.tokenizer is model.tokenizer and ours.cfg is model.cfg and ours.seconds["model_passes"] > 0
    with pytest.raises(ValueError, match="only blocks.1.hook_resid_post"):
        ours.run_with_cache(prompts, names_filter=["blocks.0.hook_resid_post"])


def test_the_word_sample_is_saebench_vocabulary_seeded_and_readable_at_its_position(tokenizer):
    state = random.getstate()
    everything = sp.saebench_alpha_words(tokenizer)
    sample = sp.saebench_alpha_words(tokenizer, n=300, seed=1)
    assert random.getstate() == state  # the eval seeds the global generators itself, later
    assert len(everything) > 40_000 and len(sample) == 300
    assert sample == sp.saebench_alpha_words(tokenizer, n=300, seed=1)
    assert sample != sp.saebench_alpha_words(tokenizer, n=300, seed=2)
    assert set(sample) <= set(everything) and sample == sorted(sample)
    assert len({text for _, text in everything}) == len(everything)
    tail = tokenizer(" has the first letter:", add_special_tokens=False)["input_ids"]
    for token_id, text in sample:
        assert sp.is_alpha_word(text) and tokenizer.decode([token_id]) == text
        ids = tokenizer("\n" + text + " has the first letter:", add_special_tokens=False)["input_ids"]
        assert ids[-6] == token_id and ids[-5:] == tail


def test_alpha_filter_is_saebench_get_alpha_tokens_filter():
    assert sp.is_alpha_word(" cat") and sp.is_alpha_word("Cat") and sp.is_alpha_word(" A")
    assert not sp.is_alpha_word("  cat") and not sp.is_alpha_word(" ") and not sp.is_alpha_word("")
    assert not sp.is_alpha_word(" café") and not sp.is_alpha_word("x1") and not sp.is_alpha_word("don't")


def test_config_defaults_are_saebench_0_6_0s():
    """AbsorptionEvalConfig()'s defaults in sae-bench 0.6.0 (checked against the class itself in the peer venv
    by saebench_peer_check.py); precalc_k_sparse_probe_sae_acts is the one deliberate difference."""
    saebench = {"random_seed": 42, "f1_jump_threshold": 0.03, "max_k_value": 10,
                "prompt_template": "{word} has the first letter:", "prompt_token_pos": -6, "llm_batch_size": 10,
                "llm_dtype": "float32", "k_sparse_probe_l1_decay": 0.01, "k_sparse_probe_batch_size": 4096,
                "k_sparse_probe_num_epochs": 50, "min_GT_probe_f1": 0.6, "min_feats_for_eval": 20,
                "eval_k_sparse_probe_batch_size": 24, "precalc_k_sparse_probe_sae_acts": False}
    ours = sp.SAEBenchProtocolConfig().eval_config_fields()
    assert ours.keys() == saebench.keys()
    assert {k for k in ours if ours[k] != saebench[k]} == {"precalc_k_sparse_probe_sae_acts"}
    config = sp.SAEBenchProtocolConfig()
    assert (config.probe_batch_size, config.probe_num_epochs, config.probe_lr) == (64, 50, 1e-2)
    assert config.activations == "ours" and config.sorted_icl_vocabulary


def test_the_command_without_sae_bench_names_the_setup(monkeypatch, tmp_path, capsys):
    from precompute.cli import main

    monkeypatch.setattr(sp, "sae_bench_available", lambda: False)
    monkeypatch.setattr(sp, "PEER_PYTHON", tmp_path / "missing" / "python")
    assert main(["saebench", "--sae", str(tmp_path), "--words", "100"]) == 2
    assert "bench/peers/setup.sh saebench" in capsys.readouterr().err


@pytest.mark.skipif(not sp.PEER_PYTHON.exists(), reason="the SAEBench peer venv is not set up "
                    "(bash bench/peers/setup.sh saebench); sae-bench cannot be installed in the project venv")
def test_in_the_peer_venv_our_activations_give_saebench_own_result_and_a_valid_json():
    check = Path(__file__).with_name("saebench_peer_check.py")
    done = subprocess.run([str(sp.PEER_PYTHON), str(check), "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ours"] == out["saebench"]  # every letter: F1, split latents, absorption, full absorption
    assert out["ours"]["stopped"] is None and out["ours"]["n_letters"] >= 2
    assert out["eval_output_valid"] and out["eval_output_letters"] == [
        row["letter"] for row in out["ours"]["letters"] if row["included"]]
    assert out["config_differences"] == ["precalc_k_sparse_probe_sae_acts"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
