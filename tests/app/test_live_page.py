"""The live-text page (/live) rendered headless: free text through the embedded model and a demo SAE."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from backend.database import DEFAULT_DB_PATH
from tests.app.urls import APP, assert_clean, link_column_urls, page_links, parse_url, render, warm_live_model

SAE = "smollm2-l6-topk-4k-k32"
SENTENCE = "The snake slid under the warm rock while the children watched."


@pytest.fixture(scope="module")
def demo_env():
    warm_live_model(DEFAULT_DB_PATH)


@pytest.fixture()
def demo(demo_env, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(DEFAULT_DB_PATH))


def frame_with(at, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def messages(at) -> str:
    return "\n".join(str(m.value) for m in (*at.error, *at.warning, *at.info))


def test_a_sentence_shows_every_token_with_latent_links_and_the_letter_readings(demo):
    at = render("live", {"sae": SAE, "text": SENTENCE})
    assert_clean(at, "live")
    assert not at.error
    tokens = frame_with(at, "top 1")
    assert "' snake'" in tokens["token"].tolist()
    assert "".join(ast.literal_eval(token) for token in tokens["token"]) == SENTENCE
    snake = tokens[tokens["token"] == "' snake'"].iloc[0]
    assert snake["active"] == 32  # a TopK SAE with k = 32
    assert snake["act 1"] >= snake["act 2"] > 0
    urls = link_column_urls(at)
    latent_links = [parse_url(url) for url in urls if "/latent?" in url]
    assert latent_links and all(page == "latent" and params["sae"] == SAE and 0 <= int(params["latent"]) < 4096
                                for page, params in latent_links)
    letters = frame_with(at, "absorption fraction")
    row = letters[letters["token"] == "' snake'"].iloc[0]
    assert row["letter"] == f"./letter?sae={SAE}&task=first_letter&letter=s"  # links carry the task
    assert row["P"] > 0 and 0 <= row["absorption fraction"] <= 1
    assert "' the'" in letters["token"].tolist() and "'.'" not in letters["token"].tolist()


def test_the_chosen_latent_is_highlighted_across_the_text(demo):
    first = render("live", {"sae": SAE, "text": SENTENCE})
    tokens = frame_with(first, "top 1")
    snake_top = int(parse_url(tokens[tokens["token"] == "' snake'"].iloc[0]["top 1"])[1]["latent"])
    at = render("live", {"sae": SAE, "text": SENTENCE, "latent": str(snake_top)})
    assert_clean(at, "live")
    assert at.selectbox(key="live_latent").value == snake_top
    contexts = [m.value for m in at.markdown if 'class="ctx"' in m.value]
    assert len(contexts) == 1 and 'class="tok act' in contexts[0]
    assert (at.get("page_link")[0].proto.query_string, at.get("page_link")[0].proto.page) == \
        (f"sae={SAE}&latent={snake_top}", "latent")
    highlighted = frame_with(at, f"latent {snake_top}")
    assert highlighted[f"latent {snake_top}"].max() > 0


def test_choosing_a_latent_puts_it_in_the_url(demo):
    at = render("live", {"sae": SAE, "text": SENTENCE})
    other = at.selectbox(key="live_latent").options[1]
    at.selectbox(key="live_latent").set_value(int(other.split()[1])).run()
    assert at.query_params["latent"] == other.split()[1]


def test_too_long_text_gives_a_message(demo):
    at = render("live", {"sae": SAE, "text": "a" * 2001})
    assert_clean(at, "live")
    assert "at most 2,000 characters" in messages(at)
    assert not at.dataframe
    at = render("live", {"sae": SAE, "text": "x," * 700})  # 1,400 characters, 1,400 tokens
    assert_clean(at, "live")
    assert "1,400 tokens long" in messages(at) and "at most 512 tokens" in messages(at)
    assert not at.dataframe


@pytest.mark.parametrize("latent, message", [("abc", "must be a whole number"), ("-1", "must be a whole number"),
                                             ("4096", "out of range")])
def test_a_bad_latent_gives_a_message(demo, latent, message):
    at = render("live", {"sae": SAE, "text": SENTENCE, "latent": latent})
    assert_clean(at, "live")
    assert message in messages(at)
    assert not at.dataframe


def test_control_characters_in_the_text_give_a_message(demo):
    at = render("live", {"sae": SAE, "text": "snake\x00"})
    assert_clean(at, "live")
    assert "control characters" in messages(at)


def test_empty_text_shows_the_input_box_and_example_links_that_reopen_the_page(demo):
    at = render("live", {"sae": SAE})
    assert_clean(at, "live")
    assert at.text_area(key="live_text").value == ""
    examples = [(page, params) for page, params in page_links(at) if page == "live"]
    assert examples and all(params["sae"] == SAE and "snake" in params["text"] for _, params in examples[:1])
    at.text_area(key="live_text").input("A snake").run()
    assert at.query_params["text"] == "A snake"
    assert "' snake'" in frame_with(at, "top 1")["token"].tolist()


def test_the_input_box_follows_the_url(demo):
    at = render("live", {"sae": SAE, "text": SENTENCE})
    assert at.text_area(key="live_text").value == SENTENCE


@pytest.fixture()
def missing_sae_folder_db(tiny_db, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "moved.duckdb"
    shutil.copy(tiny_db, path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE saes SET path = ?", [str(tmp_path / "gone" / "sae-folder")])
    monkeypatch.setenv("EXPLORER_DB", str(path))
    return path


def test_an_sae_whose_folder_is_missing_says_it_cannot_load_and_the_other_pages_still_work(missing_sae_folder_db):
    at = render("live", {"sae": "planted", "text": SENTENCE})
    assert_clean(at, "live")
    text = messages(at)
    assert "cannot be loaded" in text and "not on this machine" in text and "planted" in text
    assert "scripts/build_demo.sh" in text
    assert not at.dataframe
    for page, params in (("overview", {}), ("latent", {"sae": "planted", "latent": "1"})):
        other = render(page, params)
        assert_clean(other, page)
        assert not other.error


def test_a_model_without_a_tokenizer_here_says_why(tiny_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(tiny_db))  # model "tiny": no such tokenizer
    at = render("live", {"sae": "planted", "text": SENTENCE})
    assert_clean(at, "live")
    assert "tokenizer of `tiny` cannot be loaded" in messages(at)


@pytest.fixture()
def no_absorption_db(demo_env, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "no-absorption.duckdb"
    shutil.copy(DEFAULT_DB_PATH, path)
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM sae_absorption WHERE sae_key = ?", [SAE])
        con.execute("DELETE FROM sae_letters WHERE sae_key = ?", [SAE])
    monkeypatch.setenv("EXPLORER_DB", str(path))
    return path


def test_an_sae_without_absorption_results_shows_its_latents_and_says_what_the_letters_need(no_absorption_db):
    at = render("live", {"sae": SAE, "text": SENTENCE})
    assert_clean(at, "live")
    assert "' snake'" in frame_with(at, "top 1")["token"].tolist()
    assert "needs absorption results" in messages(at)
    assert not any("absorption fraction" in frame.value.columns for frame in at.dataframe)


NO_TORCH_SCRIPT = """
import sys
from streamlit.testing.v1 import AppTest
for page, params in (("views/overview.py", {}), ("views/latent.py", {"latent": "1"}), ("views/live.py", {})):
    at = AppTest.from_file(sys.argv[1], default_timeout=60)
    at.switch_page(page)
    at.query_params = params
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
print(sorted(name for name in ("torch", "transformer_lens", "sae_lens", "transformers") if name in sys.modules))
"""


def test_the_other_pages_and_the_empty_live_page_never_import_torch():
    done = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, APP], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EXPLORER_DB": str(DEFAULT_DB_PATH)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_an_edit_in_the_url_shows_the_next_token_before_and_after(demo):
    """Ablating the latent that peaks on ' snake' everywhere changes the prediction after ' snake' (position 1); the
    page links the ablations of the chosen latent, and removing the edits reopens the plain page."""
    plain = render("live", {"sae": SAE, "text": SENTENCE})
    latent = int(plain.selectbox(key="live_latent").value)
    ablate = next(params for page, params in page_links(plain) if page == "live" and "edit" in params
                  and params["edit"] in ([f"*:{latent}:0"], f"*:{latent}:0"))
    at = render("live", {**ablate, "at": "1"})
    assert_clean(at, "/live?edit=…")
    table = frame_with(at, "its logit change")
    assert len(table) == 10 and table["p before"].iloc[0] >= table["p before"].iloc[-1]
    assert any(f"latent {latent} ablated at every token" in m.value for m in at.markdown)
    assert any("Largest logit change over the vocabulary" in c.value for c in at.caption)
    assert ("live", {"sae": SAE, "text": SENTENCE, "latent": str(latent)}) in page_links(at)


@pytest.mark.parametrize(("edit", "message"), [("99:1:0", "tokens 0–"), ("1:999999:0", "latents 0–"),
                                               ("1:1:x-1", "scale"), ("snake", "POSITION:LATENT:VALUE")])
def test_a_bad_edit_gives_a_message(demo, edit, message):
    at = render("live", {"sae": SAE, "text": SENTENCE, "edit": edit})
    assert_clean(at, f"/live?edit={edit}")
    assert message in messages(at)


def test_a_spell_link_shows_the_margin_as_is_and_with_the_absorber_and_main_latent_ablated(demo):
    """On the demo: a word the 4k-k32 measured in the WordNet task. The first row is the model as it is; a latent
    silent on the word changes nothing; the absorber, where it fired, moves the margin."""
    at = render("live", {"sae": SAE, "spell": "snake", "task": "wordnet_category"})
    assert_clean(at, "/live?spell=snake")
    table = frame_with(at, "margin")
    assert table["ablated"].iloc[0] == "as is" and table["change"].iloc[0] == 0
    assert {"control"} <= set(table["ablated"]) and len(table) >= 3
    for row in table.itertuples():
        acts = [float(a) for a in str(row.act).split(", ") if a != "—"]
        if acts and max(acts) == 0:
            assert row.change == pytest.approx(0, abs=1e-5), "a latent silent on the word cannot move the answer"
        elif acts:
            assert row.change != 0
    assert any("is a kind of" in c.value for c in at.caption)
    assert ("token", {"sae": SAE, "token": "snake"}) in page_links(at)


@pytest.mark.parametrize(("params", "message"), [
    ({"spell": "qqqzzzx"}, "is not a word of"), ({"spell": " "}, "names the word"), ({"spell": "x" * 300}, "longer than"),
    ({"spell": "snake", "task": "nope"}, "task"),
])
def test_a_bad_spell_link_gives_a_message(demo, params, message):
    at = render("live", {"sae": SAE, **params})
    assert_clean(at, "/live?spell=…")
    assert message in messages(at)


def test_the_latent_page_s_steer_link_shows_the_text_continued_with_and_without_the_latent(demo):
    """The Latent page links a steering run; on /live it leads with the two continuations of the same text, which
    differ (twice the latent's maximum at every token moves a 135M model), and a rerun of the link repeats them."""
    latent_page = render("latent", {"sae": SAE, "latent": "409"})
    steer = next(params for page, params in page_links(latent_page) if page == "live" and "steer" in params)
    assert steer["steer"].startswith("409:") and steer["text"]
    at = render("live", {**steer, "gen": "8"})
    assert_clean(at, "/live?steer=…")
    plain, steered = (block.value for block in at.code[:2])
    assert plain.startswith(steer["text"]) and steered.startswith(steer["text"])
    assert plain != steered
    assert any("Steering: latent 409" in h.value for h in at.subheader)
    again = render("live", {**steer, "gen": "8"})
    assert [b.value for b in again.code[:2]] == [plain, steered]


@pytest.mark.parametrize(("params", "message"), [
    ({"steer": "409"}, "LATENT:ALPHA"), ({"steer": "999999:1"}, "latents 0–"), ({"steer": "409:5000"}, "between"),
    ({"steer": "409:2", "gen": "41"}, "`gen="), ({"steer": "409:2", "temp": "9"}, "`temp="),
    ({"steer": "409:2", "seed": "-1"}, "`seed="), ({"steer": ""}, "names a latent"),
])
def test_a_bad_steer_link_gives_a_message(demo, params, message):
    at = render("live", {"sae": SAE, "text": SENTENCE, **params})
    assert_clean(at, "/live?steer=…")
    assert message in messages(at)


def test_each_token_s_strongest_latent_has_an_ablate_here_link_that_edits_that_token(demo):
    plain = render("live", {"sae": SAE, "text": SENTENCE})
    tokens = frame_with(plain, "ablate top 1 here")
    snake = tokens[tokens["token"] == "' snake'"].iloc[0]
    page, params = parse_url(snake["ablate top 1 here"])
    top = int(parse_url(snake["top 1"])[1]["latent"])
    assert page == "live" and params["edit"] == f"{snake['#']}:{top}:0" and params["at"] == str(snake["#"])
    at = render("live", params)
    assert_clean(at, "/live?edit=… (ablate here)")
    assert any(f"latent {top} ablated at token {snake['#']}" in m.value for m in at.markdown)
    assert frame_with(at, "its logit change")["its logit change"].abs().max() > 0


def test_an_edit_follows_the_named_tokens_and_the_letter_probe_on_the_edited_word(demo):
    """Ablating ' snake''s strongest latent at ' snake' (position 1), with ' slid' and ' slithered' named: their
    logits before and after and the difference between them; the S probe's logit on ' snake' moves by exactly what
    the edit wrote at the hook, and no other word's probe reading moves."""
    plain = render("live", {"sae": SAE, "text": SENTENCE})
    tokens = frame_with(plain, "ablate top 1 here")
    snake = tokens[tokens["token"] == "' snake'"].iloc[0]
    params = {**parse_url(snake["ablate top 1 here"])[1], "watch": " slid, slithered"}
    at = render("live", params)
    assert_clean(at, "/live?edit=…&watch=…")
    watched = frame_with(at, "named as")
    assert watched["named as"].tolist()[0].startswith("' slid'") and len(watched) == 2
    assert (watched["change"] == watched["logit after"] - watched["logit before"]).all()
    assert any("Logit difference" in c.value for c in at.caption)
    probes = frame_with(at, "probe logit before")
    assert probes["token"].tolist() == ["' snake'"] and probes["letter"].tolist() == ["S"]
    assert probes["change"].iloc[0] != 0


@pytest.mark.parametrize(("watch", "message"), [(",".join("abcdefghi"), "at most 8"), ("a\x01b", "control")])
def test_a_bad_watch_list_gives_a_message(demo, watch, message):
    at = render("live", {"sae": SAE, "text": SENTENCE, "edit": "1:1:0", "watch": watch})
    assert_clean(at, "/live?watch=…")
    assert message in messages(at)


def test_the_first_ever_load_shows_the_conversion_s_steps(demo, monkeypatch):
    """A machine without the converted model in its user cache converts the GGUF file on the first live run (about
    17 s): the page shows the steps in a status box as they happen, then runs the text. The conversion is stood in
    for (the real one is tested in tests/precompute/loading/test_model.py); the model then loads from the cache."""
    from live import inference

    steps: list[str] = []

    def convert(model_name, progress):
        for line in ("Reading and de-quantizing the GGUF file …", "Writing the converted model to the cache …"):
            steps.append(line)
            progress(line)
        return True

    monkeypatch.setattr(inference, "needs_conversion", lambda model_name: True)
    monkeypatch.setattr(inference, "convert_embedded_once", convert)
    at = render("live", {"sae": SAE, "text": SENTENCE})
    assert_clean(at, "live")
    assert len(steps) == 2
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert all(line in shown for line in steps), "each step is written into the status box"
    assert any("converted and cached" in str(status.label) for status in at.status)
    assert "' snake'" in frame_with(at, "top 1")["token"].tolist(), "then the text runs"


def test_needs_conversion_is_only_for_the_embedded_model():
    from live import inference

    assert not inference.needs_conversion("gpt2-small") and not inference.needs_conversion("toy-hierarchy")
