"""The release path end to end, offline: `python -m precompute corpus` and `build --model gpt2-small --sae
gpt2-small-res-jb:blocks.0.hook_resid_pre` in subprocesses whose HF_HOME is a hub cache holding tiny
stand-ins for what those names resolve to (tests/release_fixtures.py), so `HookedTransformer.from_pretrained`
and `SAE.from_pretrained` run unchanged; then the explorer renders the database."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests import release_fixtures as rf
from tests.app.urls import assert_clean, render

REPO_ROOT = Path(__file__).resolve().parents[2]
SAE_ID = rf.SAE_IDS[0]
SAE_KEY = "gpt2-small-res-jb-blocks.0.hook-resid-pre"  # sae_key_from("gpt2-small-res-jb-blocks.0.hook_resid_pre")
SECOND_SAE_ID = rf.SAE_IDS[1]  # another hook: the model runs once per hook
SECOND_SAE_KEY = "gpt2-small-res-jb-blocks.1.hook-resid-pre"
CONTEXT_SIZE = 128
BUILD_ROWS = 64
ABSORPTION_WORDS = 800  # of the ~1,600 alphabetic tokens: halves the k-sparse probing time


def run_cli(cache: rf.ReleaseCache, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "precompute", *args], cwd=REPO_ROOT, env=cache.env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> rf.ReleaseCache:
    return rf.build_release_cache(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def corpus(cache) -> Path:
    output = cache.hf_home.parent / "corpus.parquet"
    run_cli(cache, "corpus", "--source", str(cache.corpus_text), "--model", "gpt2-small",
            "--context-size", str(CONTEXT_SIZE), "--output", str(output))
    return output


@pytest.fixture(scope="module")
def build(cache, corpus) -> tuple[Path, str]:
    db_path = cache.hf_home.parent / "release.duckdb"
    result = run_cli(cache, "build", "--model", "gpt2-small", "--sae", f"{rf.SAE_RELEASE}:{SAE_ID}",
                     "--sae", f"{rf.SAE_RELEASE}:{SECOND_SAE_ID}",
                     "--corpus", str(corpus), "--rows", f"0:{BUILD_ROWS}", "--db", str(db_path), "--fresh",
                     "--batch-size", "16", "--absorption-words", str(ABSORPTION_WORDS), "--ablation-candidates", "5")
    return db_path, result.stdout + result.stderr


def test_a_release_on_the_default_model_is_an_error_before_any_work(cache, corpus, tmp_path):
    """Without --model the build's model is the embedded SmolLM2: a gpt2-small release used to start the
    absorption stage on it (SmolLM2's 47k-word vocabulary: still running after ten minutes on 2 CPU cores)
    with an SAE whose d_in (64) cannot read it."""
    db_path = tmp_path / "wrong.duckdb"
    result = subprocess.run([sys.executable, "-m", "precompute", "build", "--sae", f"{rf.SAE_RELEASE}:{SAE_ID}",
                             "--corpus", str(corpus), "--rows", "0:16", "--db", str(db_path)],
                            cwd=REPO_ROOT, env=cache.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"`{SAE_KEY}` on `gpt2-small`. Pass --model" in result.stderr
    assert "Traceback" not in result.stderr and not db_path.exists()


@pytest.fixture()
def con(build):
    connection = duckdb.connect(str(build[0]), read_only=True)
    yield connection
    connection.close()


def test_corpus_is_tokenized_by_the_cached_gpt2_tokenizer(cache, corpus):
    from transformers import AutoTokenizer

    rows = pq.read_table(corpus).column("input_ids").to_pylist()
    assert len(rows) >= BUILD_ROWS and {len(r) for r in rows} == {CONTEXT_SIZE}
    tokenizer = AutoTokenizer.from_pretrained(str(rf.snapshot_dir(cache.hf_home, rf.MODEL_REPO)))
    ids = np.concatenate(rows)
    assert ids.max() < cache.vocab_size
    assert (ids == tokenizer.convert_tokens_to_ids(rf.ENDOFTEXT)).any(), "documents are joined by <|endoftext|>"
    words = set(tokenizer.decode(rows[0]).replace("<|endoftext|>", " ").replace(".", " ").lower().split())
    assert words <= set(rf.WORDS), "every row decodes to the corpus words"


def test_build_loaded_the_release_names_from_the_cache(build):
    assert "Loaded pretrained model gpt2-small into HookedTransformer" in build[1]
    # sae-lens's yaml gives gpt2-small-res-jb model_from_pretrained_kwargs: the model is loaded that way.
    assert "gpt2-small: loaded with center_writing_weights=True (the SAEs' model_from_pretrained_kwargs)" in build[1]


def test_saes_row_records_the_release(con):
    row = con.execute("SELECT source, release, sae_id, path, model_name, hook_name, layer, architecture, d_in, d_sae, "
                      "n_tokens FROM saes WHERE sae_key = ?", [SAE_KEY]).fetchone()
    assert row == ("release", rf.SAE_RELEASE, SAE_ID, None, "gpt2-small", SAE_ID, 0, "standard", rf.D_MODEL, rf.D_SAE,
                   BUILD_ROWS * (CONTEXT_SIZE - 1))  # position 0 of each row is left out


def test_both_hooks_are_built(con):
    rows = con.execute("SELECT sae_key, sae_id, hook_name, layer FROM saes ORDER BY layer").fetchall()
    assert rows == [(SAE_KEY, SAE_ID, SAE_ID, 0), (SECOND_SAE_KEY, SECOND_SAE_ID, SECOND_SAE_ID, 1)]
    assert con.execute("SELECT count(*) FROM sae_absorption").fetchone()[0] == 2
    assert con.execute("SELECT count(DISTINCT hook_name) FROM probe_runs").fetchone()[0] == 2


def test_dashboards_cover_every_latent(con, cache):
    assert con.execute("SELECT count(*), count(DISTINCT latent), max(latent) FROM latents WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?)",
                       [SAE_KEY]).fetchone() == (rf.D_SAE, rf.D_SAE, rf.D_SAE - 1)
    n_contexts, n_latents = con.execute("SELECT count(*), count(DISTINCT latent) FROM contexts WHERE sae_num = (SELECT sae_num FROM sae_numbers WHERE sae_key = ?)",
                                        [SAE_KEY]).fetchone()
    assert n_contexts > 0 and n_latents > 26
    assert con.execute("SELECT count(*) FROM vocab WHERE model_name = 'gpt2-small'").fetchone()[0] == cache.vocab_size
    assert con.execute("SELECT count(*) FROM sequences WHERE model_name = 'gpt2-small'").fetchone()[0] > 0


def test_absorption_ran_and_finds_the_planted_letter_latents(con):
    """Latents 0..25 read the letter directions planted in the embeddings: each is its letter's main latent."""
    n_letters, split_mode = con.execute("SELECT n_letters, split_mode FROM sae_absorption WHERE sae_key = ?",
                                        [SAE_KEY]).fetchone()
    assert n_letters >= 1 and split_mode == "crossfit"
    main = dict(con.execute("SELECT letter, main_latent FROM sae_letters WHERE sae_key = ?", [SAE_KEY]).fetchall())
    assert main == {chr(ord("a") + i): i for i in range(26)}
    assert {n for (n,) in con.execute("SELECT count(*) FROM probe_words GROUP BY probe_run_id").fetchall()} == {
        ABSORPTION_WORDS}, "each hook's probe run measured the seeded subset"


@pytest.fixture()
def release_app(build, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(build[0]))
    yield
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # the app's DuckDB connection to this module's temporary file


def test_overview_shows_the_release_sae(release_app):
    at = render("overview", {})
    assert_clean(at, "overview")
    assert any(s.value == SAE_KEY for s in at.subheader)
    assert any(f"from `{rf.SAE_RELEASE} / {SAE_ID}`" in c.value for c in at.caption)


def test_latent_page_shows_the_release_and_its_neuronpedia_link(release_app):
    at = render("latent", {"sae": SAE_KEY, "latent": "3"})
    assert_clean(at, "latent")
    assert at.title[0].value == "Latent 3"
    caption = at.caption[0].value
    assert f"from `{rf.SAE_RELEASE}` / `{SAE_ID}`" in caption
    # sae-lens's yaml names this SAE gpt2-small/0-res-jb on Neuronpedia.
    assert "[Neuronpedia](https://www.neuronpedia.org/gpt2-small/0-res-jb/3)" in caption
    assert any('class="ctx"' in m.value for m in at.markdown), "the latent's contexts are shown"


def test_letter_page_renders_the_release_absorption(release_app):
    at = render("letter", {"sae": SAE_KEY, "letter": "c"})
    assert_clean(at, "letter")


LIVE_TEXT = "The cat saw a big red boat on the river."
CENTRED = (("center_writing_weights", True),)  # gpt2-small-res-jb's model_from_pretrained_kwargs


@pytest.fixture()
def in_process_cache(cache, monkeypatch):
    """Point huggingface_hub's cache (read from HF_HOME at import time; transformers and sae-lens use it)
    at the fake one in this process; afterwards empty every per-process cache that may hold the fake gpt2."""
    import huggingface_hub.constants

    from live import tokenizer
    from precompute.loading.model import load_model_cached

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache.hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield
    load_model_cached.cache_clear()
    tokenizer._load.cache_clear()


def test_the_release_sae_asks_for_centred_writing_weights(in_process_cache):
    from precompute.loading.model import load_model_cached
    from precompute.loading.sae import SAESpec, sae_metadata
    from precompute.pipeline.job import JobConfig, build_model_kwargs

    spec = SAESpec.parse(f"{rf.SAE_RELEASE}:{SAE_ID}")
    metadata = sae_metadata(spec)  # cfg.json from the cache, with sae-lens's yaml overrides
    assert metadata["model_from_pretrained_kwargs"] == {"center_writing_weights": True}
    assert (metadata["model_name"], metadata["neuronpedia_id"]) == ("gpt2-small", "gpt2-small/0-res-jb")
    config = JobConfig(model_name="gpt2-small", corpus_path=Path("unused"), corpus_rows=(0, 1), db_path=Path("unused"))
    assert build_model_kwargs([spec], config) == CENTRED
    centred = load_model_cached("gpt2-small", from_pretrained_kwargs=CENTRED)
    # Centred writing weights: every vector written into the residual stream has mean 0 over d_model.
    assert centred.W_E.mean(-1).abs().max() < 1e-6 and centred.W_pos.mean(-1).abs().max() < 1e-6
    assert load_model_cached("gpt2-small").W_E.mean(-1).abs().max() > 1e-3, "no processing by default"


@pytest.fixture()
def live_app(release_app, in_process_cache):
    """The live page loads the model, tokenizer and SAE in this process; the model is loaded (as the SAE
    asks) before rendering so the page's 60 s timeout does not include it."""
    from live.inference import load_model

    load_model("gpt2-small", CENTRED)


def test_live_page_runs_the_release_sae_on_free_text(live_app):
    at = render("live", {"sae": SAE_KEY, "text": LIVE_TEXT})
    assert_clean(at, "live")
    assert not at.error
    tokens = next(frame.value for frame in at.dataframe if "top 1" in frame.value.columns)
    assert "".join(ast.literal_eval(token) for token in tokens["token"]) == LIVE_TEXT
    letters = next(frame.value for frame in at.dataframe if "absorption fraction" in frame.value.columns)
    cat = letters[letters["token"] == "' cat'"].iloc[0]
    assert cat["letter"] == f"./letter?sae={SAE_KEY}&task=first_letter&letter=c"  # Feature links name their task
    # The planted letter latent 2 ('c') reads the embedding's letter direction: the top latent on ' cat',
    # and the letter's main latent, which fires there.
    top = tokens[tokens["token"] == "' cat'"].iloc[0]
    assert top["top 1"] == f"./latent?sae={SAE_KEY}&latent=2"
    assert cat["main latent"] == f"./latent?sae={SAE_KEY}&latent=2" and cat["main fired"]


@pytest.mark.parametrize("page, params", [
    ("browse", {"sae": SAE_KEY}),
    ("browse", {"sae": SAE_KEY, "q": "cat", "in": "contexts"}),
    ("compare", {}),
])
def test_other_pages_render_the_release_database(release_app, page, params):
    assert_clean(render(page, params), page)


def test_token_page_reads_the_release_absorption_for_a_word(release_app):
    at = render("token", {"sae": SAE_KEY, "token": "cat"})
    assert_clean(at, "token")
    lines = [m.value for m in at.markdown if m.value.startswith(f"- `{SAE_KEY}`")]
    assert lines, "one line per SAE for the word"
    assert all(f"[2](./latent?sae={SAE_KEY}&latent=2)" in line for line in lines), "'c''s planted latent"
