"""live/steer.py: `steer=LATENT:ALPHA` parsed with a message for every bad request, and the steering vector added at
the SAE's hook at every position while the model continues the text: α = 0 changes nothing, and a latent whose decoder
row points at one token's unembedding makes the model write that token at every step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from live.steer import (
    MAX_NEW_TOKENS,
    MAX_STEERS,
    Generation,
    Steer,
    SteerError,
    continue_text,
    parse_generation,
    parse_steers,
    run_steering,
    steering_vector,
)
from tests import helpers

TEXT = [5, helpers.PLANTED_TOKEN, 8, 9]


@pytest.fixture(scope="module")
def sae_folder(tmp_path_factory):
    return helpers.planted_sae_folder(tmp_path_factory.mktemp("steer"))


@pytest.fixture()
def model_and_sae(sae_folder):
    from sae_lens import SAE

    return helpers.tiny_model(), SAE.load_from_disk(str(sae_folder), device="cpu")


@pytest.mark.parametrize(("raw", "steers"), [
    (["3:12"], (Steer(3, 12.0),)),
    (["3:-2.5, 5:1e1"], (Steer(3, -2.5), Steer(5, 10.0))),
    (["1:0", "2:+4"], (Steer(1, 0.0), Steer(2, 4.0))),
])
def test_steers_are_parsed_from_the_url(raw, steers):
    assert parse_steers(raw, d_sae=8) == steers
    assert parse_steers([s.spec for s in steers], 8) == steers


@pytest.mark.parametrize(("raw", "message"), [
    (["8:1"], "latents 0–7"), (["1:5000"], "between"), (["1"], "LATENT:ALPHA"), (["x:1"], "LATENT:ALPHA"),
    (["1:nan"], "LATENT:ALPHA"), ([""], "names a latent"), ([",".join(["1:1"] * (MAX_STEERS + 1))], f"at most {MAX_STEERS}"),
])
def test_a_bad_steer_gets_a_message_naming_it(raw, message):
    with pytest.raises(SteerError, match=message):
        parse_steers(raw, d_sae=8)


@pytest.mark.parametrize(("gen", "temp", "seed", "message"), [
    ("0", None, None, "gen"), (str(MAX_NEW_TOKENS + 1), None, None, "gen"), ("x", None, None, "gen"),
    (None, "3", None, "temp"), (None, "-1", None, "temp"), (None, "nan", None, "temp"), (None, None, "-4", "seed"),
])
def test_generation_limits_get_a_message(gen, temp, seed, message):
    with pytest.raises(SteerError, match=f"`{message}="):
        parse_generation(gen, temp, seed)


def test_generation_defaults_are_greedy_and_twenty_tokens():
    assert parse_generation(None, None, None) == Generation(20, 0.0, 0)
    assert parse_generation(" 40 ", "0.7", "9") == Generation(40, 0.7, 9)


@given(st.lists(st.text(max_size=30), max_size=5))
def test_any_steer_text_parses_or_gets_a_message(raw):
    try:
        steers = parse_steers(raw, d_sae=8)
    except SteerError as error:
        assert str(error) and len(str(error)) < 400
        assert not any(ord(c) < 32 or ord(c) == 127 for c in str(error)), "a message echoes a control character"
    else:
        assert 0 < len(steers) <= MAX_STEERS and all(0 <= s.latent < 8 and abs(s.alpha) <= 1000 for s in steers)


def test_zero_strength_changes_nothing_and_a_greedy_run_repeats_itself(model_and_sae):
    model, sae = model_and_sae
    result = run_steering(model, sae, helpers.HOOK, TEXT, None, (Steer(2, 0.0),), Generation(8))
    assert len(result.plain) == 8 and result.steered == result.plain
    assert run_steering(model, sae, helpers.HOOK, TEXT, None, (Steer(2, 0.0),), Generation(8)).plain == result.plain


def test_a_latent_writing_a_token_s_unembedding_makes_the_model_write_it(model_and_sae):
    """Latent 2's decoder row is set to the (centred) unembedding of a token the plain continuation never writes:
    steered strongly, the model writes it at every step, generated tokens included; the plain run is untouched."""
    model, sae = model_and_sae
    plain = continue_text(model, TEXT, None, Generation(6))
    target = next(t for t in range(model.cfg.d_vocab) if t not in plain)
    direction = model.W_U[:, target].detach() - model.W_U[:, target].detach().mean()
    with torch.no_grad():
        sae.W_dec[2] = direction / direction.norm()
    vector = steering_vector(sae, (Steer(2, 200.0),))
    assert torch.allclose(vector, 200.0 * sae.W_dec[2].detach())
    result = run_steering(model, sae, helpers.HOOK, TEXT, None, (Steer(2, 200.0),), Generation(6))
    assert result.plain == plain
    assert result.steered == (target,) * 6


def test_sampling_is_reproducible_from_its_seed(model_and_sae):
    model, _ = model_and_sae
    sampled = Generation(10, temperature=1.5, seed=3)
    first = continue_text(model, TEXT, None, sampled)
    assert continue_text(model, TEXT, None, sampled) == first
    others = {continue_text(model, TEXT, None, Generation(10, 1.5, seed)) for seed in range(4, 8)}
    assert others - {first}  # another seed samples another text
