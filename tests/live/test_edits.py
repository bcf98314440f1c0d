"""live/edits.py: `edit=POS:LATENT:VALUE` parsed with a message for every bad edit, and spliced into the model at the
SAE's hook with the SAE's error term kept, so an empty edit reproduces the model and an ablation changes the residual
stream by exactly what the latent wrote."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from live.edits import MAX_EDITS, Edit, EditError, edited_codes, model_logits, parse_edits, run_edits, splice_hook
from tests import helpers


@pytest.fixture(scope="module")
def model_and_sae(tmp_path_factory):
    from sae_lens import SAE

    folder = helpers.planted_sae_folder(tmp_path_factory.mktemp("edits"))
    return helpers.tiny_model(), SAE.load_from_disk(str(folder), device="cpu")


TEXT = [5, helpers.PLANTED_TOKEN, 8, helpers.PLANTED_TOKEN, 9]  # token ids: the planted latent fires at 1 and 3


@pytest.mark.parametrize(("raw", "edits"), [
    (["3:2:0"], (Edit(3, 2, 0.0),)),
    (["*:5:x2"], (Edit(None, 5, 2.0, scale=True),)),
    (["0:1:-1.5, 4:7:2e1"], (Edit(0, 1, -1.5), Edit(4, 7, 20.0))),
    (["1:3:0", "2:3:x0.5"], (Edit(1, 3, 0.0), Edit(2, 3, 0.5, scale=True))),
    ([" 2 : 4 : 3 "], (Edit(2, 4, 3.0),)),
    ([""], ()),
])
def test_edits_are_parsed_from_the_url(raw, edits):
    assert parse_edits(raw, n_tokens=5, d_sae=8) == edits
    assert [e.spec for e in edits] == [e.spec for e in parse_edits([e.spec for e in edits], 5, 8)]


@pytest.mark.parametrize(("raw", "message"), [
    (["5:1:0"], "tokens 0–4"), (["1:8:0"], "latents 0–7"), (["1:1:5000"], "between"), (["1:1:x-2"], "scale"),
    (["1:1:x1000"], "scale"), (["one:1:0"], "POSITION:LATENT:VALUE"), (["1:1"], "POSITION:LATENT:VALUE"),
    (["1:1:nan"], "POSITION:LATENT:VALUE"), ([",".join(["1:1:0"] * (MAX_EDITS + 1))], f"at most {MAX_EDITS}"),
])
def test_a_bad_edit_gets_a_message_naming_it(raw, message):
    with pytest.raises(EditError, match=message):
        parse_edits(raw, n_tokens=5, d_sae=8)


@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_edit_text_parses_or_gets_a_message(raw):
    try:
        edits = parse_edits(raw, n_tokens=5, d_sae=8)
    except EditError as error:
        assert str(error) and len(str(error)) < 400
        assert not any(ord(c) < 32 or ord(c) == 127 for c in str(error)), "a message echoes a control character"
    else:
        assert all(0 <= e.latent < 8 and (e.position is None or 0 <= e.position < 5) for e in edits)


def test_an_empty_edit_reproduces_the_model_s_logits(model_and_sae):
    model, sae = model_and_sae
    plain = model_logits(model, sae, helpers.HOOK, TEXT, None, None)
    spliced = model_logits(model, sae, helpers.HOOK, TEXT, None, ())
    assert (plain - spliced).abs().max().item() < 1e-4
    for position in (0, 4, -1):  # one row's unembedding (what run_edits and the spelling check read) is that row
        one = model_logits(model, sae, helpers.HOOK, TEXT, None, (), position=position)
        assert one.shape == plain[position].shape and (one - plain[position]).abs().max().item() < 1e-5
    result = run_edits(model, sae, helpers.HOOK, TEXT, None, (), position=4)
    assert result.max_logit_change < 1e-4 and result.before.ids == result.after.ids


def test_ablating_a_latent_removes_exactly_what_it_wrote(model_and_sae):
    """The planted latent fires 5.0 on the planted token: ablating it there moves the residual stream by -5 times its
    decoder row at that position and nowhere else; doubling it everywhere adds +5 times the row at both."""
    _, sae = model_and_sae
    resid = torch.randn(1, 5, sae.cfg.d_in)
    resid[0, :, helpers.PLANTED_DIRECTION] = torch.tensor([0.0, 10.0, 0.0, 10.0, 0.0])  # the planted token at 1 and 3
    z = sae.encode(resid[0])
    assert z[1, helpers.PLANTED_LATENT].item() == pytest.approx(5.0, abs=1e-4)
    row = sae.W_dec[helpers.PLANTED_LATENT].detach()
    ablated = splice_hook(sae, 0, (Edit(1, helpers.PLANTED_LATENT, 0.0),))(resid.clone(), None)
    moved = (ablated - resid)[0]
    assert torch.allclose(moved[1], -5.0 * row, atol=1e-4)
    assert moved[[0, 2, 3, 4]].abs().max().item() < 1e-5
    doubled = splice_hook(sae, 0, (Edit(None, helpers.PLANTED_LATENT, 2.0, scale=True),))(resid.clone(), None)
    assert torch.allclose((doubled - resid)[0, 3], 5.0 * row, atol=1e-4)


def test_edits_apply_in_order():
    codes = torch.ones(3, 4)
    out = edited_codes(codes, (Edit(None, 1, 3.0), Edit(2, 1, x := 0.5, scale=True)))
    assert out[:, 1].tolist() == [3.0, 3.0, 3.0 * x] and codes[:, 1].tolist() == [1.0, 1.0, 1.0]


def test_an_edit_reports_what_it_wrote_at_the_hook_and_the_watched_logits(model_and_sae):
    """Ablating the planted latent at token 1 writes −5 × its decoder row there and nowhere else; a probe's logit
    moves by that change · its weight; the watched tokens' logits are the full logits' entries."""
    model, sae = model_and_sae
    edit = (Edit(1, helpers.PLANTED_LATENT, 0.0),)
    result = run_edits(model, sae, helpers.HOOK, TEXT, None, edit, position=4, watched=(2, 6))
    row = sae.W_dec[helpers.PLANTED_LATENT].detach().numpy()
    assert set(result.resid_change) == {1}
    assert result.resid_change[1] == pytest.approx(-5.0 * row, abs=1e-4)
    weight = torch.randn(row.shape[0]).numpy()
    assert result.probe_logit_change(1, weight) == pytest.approx(float(-5.0 * row @ weight), abs=1e-3)
    assert result.probe_logit_change(3, weight) == 0.0
    before = model_logits(model, sae, helpers.HOOK, TEXT, None, None)[4]
    assert result.watched_before == pytest.approx((before[2].item(), before[6].item()), abs=1e-5)
