"""The token page with running text, and any string: a database built by the real job on the tiny model, whose
(fake) absorption stage wrote known letter latents and one absorbed task word. " snake" is the planted token:
the planted latent 3 fires on every occurrence (the absorber), while the letter S's main latent (the dead latent)
never does: the textbook absorption picture, in the prompt and in running text."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests import helpers
from tests.app.test_pages import all_text, run_page
from tests.app.urls import assert_clean, links, parse_url, render

PLANTED, DEAD = helpers.PLANTED_LATENT, helpers.DEAD_LATENT
SNAKE, SUN, TEA, SKIN = helpers.PLANTED_TOKEN, 8, 9, 13  # " snake", " sun", "Tea", "skin" (helpers.RUNNING_WORDS)
FAKE = helpers.FakeAbsorption(measured=("measured",), letters={"s": (DEAD, [DEAD]), "t": (DEAD, [DEAD])},
                              probe_words={SNAKE: ("s", True, [PLANTED, DEAD]), TEA: ("t", False, [DEAD, 1])})


@pytest.fixture(scope="module")
def running_db(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("running")
    with pytest.MonkeyPatch.context() as monkeypatch:
        path = helpers.build_running_text_database(root, FAKE, monkeypatch)
    rows = np.array(pq.read_table(root / "corpus.parquet").column("input_ids").to_pylist())
    return path, rows


@pytest.fixture()
def running_env(running_db, monkeypatch) -> tuple[Path, np.ndarray]:
    monkeypatch.setenv("EXPLORER_DB", str(running_db[0]))
    return running_db


@pytest.fixture(params=["DROP TABLE", "DELETE FROM"])
def without_running_text(request, tmp_path, running_db, monkeypatch) -> Path:
    """The same database as one built before the token tables existed (dropped), or migrated from such a
    database (the tables are there, empty)."""
    import shutil

    path = tmp_path / "old.duckdb"
    shutil.copyfile(running_db[0], path)
    with duckdb.connect(str(path)) as con:
        for table in ("token_letters", "token_latents", "token_occurrences"):
            con.execute(f"{request.param} {table}")  # statements and names from this file
    monkeypatch.setenv("EXPLORER_DB", str(path))
    return path


def sae_lines(at) -> dict[str, str]:
    """The per-SAE lines ("- `key` — in the prompt: … · in running text: …") by SAE key."""
    found = {}
    for block in (m.value for m in at.markdown):
        for line in block.splitlines():
            match = re.match(r"- `([^`]+)` — (.*)", line)
            if match:
                found[match.group(1)] = match.group(2)
    return found


def markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\((\./[^)]+)\)", text)


def occurrences(rows: np.ndarray, token: int) -> int:
    return int((rows[:, 1:] == token).sum())


# --- a word of the task ----------------------------------------------------------------------------
def test_absorbed_word_shows_the_prompt_and_the_running_text_per_sae(running_env):
    _, rows = running_env
    at = run_page("token", sae="measured", token="snake")
    assert_clean(at, "token=snake")
    lines = sae_lines(at)
    assert set(lines) == {"measured", "unmeasured"}
    n = occurrences(rows, SNAKE)
    measured = lines["measured"]
    assert measured.startswith(f"in the prompt: fully absorbed by latent [{PLANTED}](./latent?sae=measured&latent={PLANTED})")
    assert (f"in running text: its letter's main latent [{DEAD}](./latent?sae=measured&latent={DEAD}) fires on 0% "
            f"of its [{n:,} occurrences](./browse?sae=measured&q=snake&in=contexts)") in measured
    assert f"the absorber [{PLANTED}](./latent?sae=measured&latent={PLANTED}) fires on 100%" in measured
    unmeasured = lines["unmeasured"]
    assert unmeasured.startswith("in the prompt: no absorption measurements")
    assert f"[{n:,} occurrences](./browse?sae=unmeasured&q=snake&in=contexts)" in unmeasured
    assert f"latent [{PLANTED}](./latent?sae=unmeasured&latent={PLANTED}) fires most (on 100%, mean activation 5.0)" \
        in unmeasured
    # The detailed prompt table is still there, one row for the SAE that measured the word.
    tables = [d.value for d in at.dataframe if "absorbed" in d.value.columns]
    assert len(tables) == 1 and tables[0]["SAE"].tolist() == ["measured"]
    # the answer first: a line per task, then the SAEs x tasks matrix (every SAE of the model)
    assert any(f"Letter S: absorbed in 1 of 1 SAEs, by {PLANTED}" in m.value for m in at.markdown)
    matrix = at.dataframe[0].value
    assert matrix["SAE"].tolist() == ["measured", "unmeasured"]
    assert matrix.iloc[0, 1].startswith(f"fully absorbed by {PLANTED}") and matrix.iloc[1, 1] == "— not measured"


def test_the_per_sae_links_open_clean_pages(running_env):
    at = run_page("token", sae="measured", token="snake")
    urls = sorted({url for line in sae_lines(at).values() for url in markdown_links(line)})
    assert any(url.startswith("./browse?") for url in urls) and any(url.startswith("./latent?") for url in urls)
    for url in urls:
        page, params = parse_url(url)
        assert_clean(render(page, params), url)


def test_a_word_that_is_not_absorbed_says_which_latent_carries_it(running_env):
    at = run_page("token", sae="measured", token="Tea")
    assert_clean(at, "token=Tea")
    line = sae_lines(at)["measured"]
    assert line.startswith(f"in the prompt: not absorbed (its letter's main latent [{DEAD}]")
    assert f"fires on 0% of its [{occurrences(running_env[1], TEA):,} occurrences]" in line


# --- the browse page's token search, from the token index --------------------------------------------
def test_browse_lists_the_latents_that_fire_on_the_token_and_where_it_occurs(running_env):
    _, rows = running_env
    at = run_page("browse", sae="measured", q="snake", **{"in": "contexts"})
    assert_clean(at, "browse q=snake")
    frame = at.dataframe[0].value
    top = frame.iloc[0]
    assert (top["latent"], top["token"], top["n_occurrences"], top["fire_rate"]) == (PLANTED, " snake",
                                                                                   occurrences(rows, SNAKE), 1.0)
    assert top["mean_act"] == pytest.approx(5.0, abs=0.05)
    contexts = [m.value for m in at.markdown if 'class="ctx"' in m.value]
    assert 0 < len(contexts) <= 10
    assert all(re.search(r'class="tok peak"[^>]*>&nbsp;snake<', c) for c in contexts)


def test_browse_says_when_the_token_index_is_not_computed(without_running_text):
    at = run_page("browse", sae="measured", q="snake")
    assert_clean(at, "browse on an old database")
    assert any("not computed for `measured` in this database" in i.value for i in at.info)
    assert ("browse", {"sae": "measured", "q": "snake", "in": "logits"}) in links(at)


def test_token_page_says_when_running_text_is_not_computed(without_running_text):
    at = run_page("token", sae="measured", token="snake")
    assert_clean(at, "token page on an old database")
    assert "in running text: not computed for this SAE in this database" in sae_lines(at)["measured"]
    at = run_page("token", sae="measured", token="snakeskin")
    assert_clean(at, "a multi-token word on an old database")
    assert "occurrences" not in next(d.value for d in at.dataframe if "form" in d.value.columns).columns
    assert "not computed for this SAE in this database" in all_text(at)


# --- any other string ----------------------------------------------------------------------------------
def pieces(at) -> list[tuple[str, int | None]]:
    frame = next(d.value for d in at.dataframe if "token" in d.value.columns and "form" in d.value.columns)
    return [(row["form"], row["token"], None if pd.isna(row["id"]) else int(row["id"])) for _, row in frame.iterrows()]


def test_a_multi_token_word_shows_its_tokens_first_token_and_nearest_words(running_env):
    at = run_page("token", sae="measured", token="snakeskin")
    assert_clean(at, "token=snakeskin")
    assert any("not a single-token alphabetic word" in e.value for e in at.error)
    text = all_text(at)
    assert "longest match over the stored vocabulary" in text  # the tiny model has no tokenizer: the fallback
    mid = [(token, token_id) for form, token, token_id in pieces(at) if form.startswith("mid-sentence")]
    assert mid == [("' snake'", SNAKE), ("'skin'", SKIN)]
    frame = next(d.value for d in at.dataframe if "form" in d.value.columns)
    snake = frame[frame["id"] == SNAKE].iloc[0]
    assert snake["occurrences"] == occurrences(running_env[1], SNAKE)
    assert snake["top latent"].endswith(f"latent={PLANTED}") and snake["its fire rate"] == 1.0
    assert snake["task word"] == "./token?sae=measured&token=snake"
    labels = [link.proto.label for link in at.get("page_link")]
    assert "snake →" in labels  # its first token, a word of the task
    assert "snake" in labels  # the nearest word of the task


def test_the_model_tokenizer_is_used_when_it_loads(running_env, monkeypatch):
    import live.tokenizer

    class Tokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": {" snakeskin": [SNAKE, SKIN], "snakeskin": [SKIN, SKIN]}.get(text, [SUN])}

        def decode(self, ids):
            return "".join(helpers.RUNNING_WORDS[i] for i in ids)

    monkeypatch.setattr(live.tokenizer, "load", lambda model_name: Tokenizer())
    at = run_page("token", sae="measured", token="snakeskin")
    assert_clean(at, "token=snakeskin with a tokenizer")
    assert "longest match" not in all_text(at)
    assert [(form.split()[0], token) for form, token, _ in pieces(at)] == [
        ("mid-sentence", "' snake'"), ("mid-sentence", "'skin'"), ("at", "'skin'"), ("at", "'skin'")]


def test_an_unknown_string_offers_the_nearest_words(running_env):
    at = run_page("token", sae="measured", token="snaek")
    assert_clean(at, "token=snaek")
    assert any("not a single-token alphabetic word" in e.value for e in at.error)
    labels = [link.proto.label for link in at.get("page_link")]
    assert labels[-2:] == ["snake", "Tea"]  # by Jaro-Winkler similarity: every task word, nearest first


def test_a_token_that_is_not_a_task_word_shows_its_running_text(running_env):
    at = run_page("token", sae="measured", token="sun")
    assert_clean(at, "token=sun")
    assert any("is a token of `tiny`" in i.value and "not a word of the first-letter task" in i.value for i in at.info)
    line = sae_lines(at)["measured"]
    assert line.startswith("in the prompt: not a word of the task")
    assert (f"its letter's main latent [{DEAD}](./latent?sae=measured&latent={DEAD}) fires on 0% of its "
            f"[{occurrences(running_env[1], SUN):,} occurrences]") in line


@pytest.mark.parametrize("text", ["x" * 64, "🙂 🙂", "' OR 1=1 --", "a b c", "%", "t7", "<b>x</b>", "`", "[a](b)"])
def test_arbitrary_strings_render_cleanly(running_env, text):
    at = run_page("token", sae="measured", token=text)
    assert_clean(at, f"token={text!r}")
    assert at.dataframe, "the tokenization table is shown"


def test_without_probe_data_the_running_text_is_still_shown(app_env):
    at = run_page("token", sae="planted", token="t7")
    assert_clean(at, "token=t7, no probe data")
    assert any("probe data" in i.value for i in at.info)
    assert "in running text:" in sae_lines(at)["planted"]


def test_generated_token_and_browse_urls_render_cleanly(running_env):
    """The URL fuzz (test_url_fuzz.py) on this database: its shared databases hold no token_letters rows."""
    from tests.app.test_url_fuzz import fuzz, read_facts

    facts = read_facts(running_env[0])
    for case, page in enumerate(("token", "browse")):
        assert fuzz(page, facts, 60, case=1000 + case) >= 60
