"""A real browser (Debian chromium via playwright) opens shared URLs: a latent's highlighted contexts,
the compare page's charts, a Feature page of a second absorption task, and the live page."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from backend.database import DEFAULT_DB_PATH
from tests import helpers

# Run under pytest-xdist with `--dist loadgroup` (`-n 2 --dist loadgroup`), both tests go to one worker: one server.
pytestmark = pytest.mark.xdist_group("browser")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db_path: Path):
    """A streamlit server of the app on `db_path`, on a free port: yields its URL, then stops it."""
    port = free_port()
    env = {**os.environ, "EXPLORER_DB": str(db_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_db):  # one server for the module: starting streamlit is most of a test's time
    yield from serve(tiny_db)


@pytest.fixture(scope="module")
def sweep_server(sweep_db):  # the sweep holds a second absorption task (tests/helpers.py: SWEEP_TASK)
    yield from serve(sweep_db)


@pytest.fixture(scope="module")
def demo_server():  # the live page runs an SAE, so its database's SAE folders must exist: the shipped demo's do
    yield from serve(DEFAULT_DB_PATH)


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for the browser test (apt-get install chromium)")


def test_shared_latent_url_shows_highlighted_contexts(server, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/latent?sae=planted&latent={helpers.PLANTED_LATENT}")
        page.wait_for_selector("div.ctx span.peak", timeout=60_000)
        contexts = page.locator("div.ctx")
        assert contexts.count() >= 20
        peak_texts = page.locator("div.ctx span.peak").all_inner_texts()
        assert all(t.strip() == f"t{helpers.PLANTED_TOKEN}" for t in peak_texts[:20])
        assert page.get_by_text(f"Latent {helpers.PLANTED_LATENT}", exact=True).count() >= 1
        # A bad link shows a message, not a traceback.
        page.goto(f"{server}/latent?sae=planted&latent=abc")
        page.wait_for_selector("text=must be a whole number", timeout=60_000)
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_compare_url_shows_a_plotly_chart_and_the_chosen_saes(server):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/compare?saes=planted,second")
        page.wait_for_selector("div.js-plotly-plot svg", timeout=60_000)  # explained variance vs L0 and width
        assert page.locator("div.js-plotly-plot").count() >= 1
        for key in ("planted", "second"):  # their overview links
            assert page.get_by_text(f"{key} →", exact=True).count() == 1
        assert page.locator("text=Traceback").count() == 0
        page.goto(f"{server}/compare?saes=planted,nope")
        page.wait_for_selector("text=Unknown SAE", timeout=60_000)
        assert page.locator("code", has_text="nope").count() >= 1  # the message names the bad key
        browser.close()


def test_feature_url_of_a_second_task_shows_its_class_and_a_bad_task_a_message(sweep_server):
    require_chromium()
    from playwright.sync_api import sync_playwright

    query = urlencode({"sae": "w8", "task": helpers.SWEEP_TASK, "class": "animal"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{sweep_server}/letter?{query}")
        page.get_by_text("Semantic category (WordNet): animal", exact=True).wait_for(timeout=60_000)
        page.wait_for_selector("div.js-plotly-plot svg", timeout=60_000)  # the class's cosine scatter
        assert page.locator("text=Traceback").count() == 0
        page.goto(f"{sweep_server}/letter?sae=w8&letter=s")  # an old link: the first-letter task, unchanged
        page.get_by_text("Letter S", exact=True).wait_for(timeout=60_000)
        page.goto(f"{sweep_server}/letter?sae=w8&task=colour")
        page.wait_for_selector("text=Unknown task", timeout=60_000)
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_live_url_runs_the_text_and_shows_the_per_token_table(demo_server):
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    query = urlencode({"sae": "smollm2-l6-topk-4k-k32", "text": "The snake slid under the warm rock."})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{demo_server}/live?{query}")
        # The server's first live run loads the model (10-30 s; minutes on a busy 2-core machine), then the
        # tables render; a message (the model or SAE cannot load) fails the test with its text.
        alerts = page.locator('[data-testid="stAlertContainer"]')
        page.get_by_text("Per token", exact=True).or_(alerts).first.wait_for(timeout=420_000)
        assert alerts.count() == 0, alerts.all_inner_texts()
        tables = page.locator('[data-testid="stDataFrame"]')
        expect(tables).to_have_count(2, timeout=60_000)  # per token, and the word tokens' first letters
        per_token = tables.first  # drawn on a canvas; its cells are also in the grid's (hidden) accessible table
        cells = per_token.locator('[role="gridcell"]')
        expect(cells.filter(has_text=re.compile(r"^' snake'$"))).to_have_count(1, timeout=60_000)
        assert per_token.locator('[role="columnheader"]').filter(has_text=re.compile("^top 1$")).count() == 1
        assert per_token.locator('[role="row"]').count() == 10  # the header and the text's 9 tokens
        assert page.locator("div.ctx span.tok").count() == 9  # the highlighted latent across the text
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def test_a_shared_spell_link_shows_the_ablation_table(demo_server):
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    query = urlencode({"sae": "smollm2-l6-topk-4k-k32", "spell": "snake", "task": "wordnet_category"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{demo_server}/live?{query}")
        alerts = page.locator('[data-testid="stAlertContainer"]')
        table = page.locator('[data-testid="stDataFrame"]')
        table.or_(alerts).first.wait_for(timeout=420_000)  # the server's first run loads the model
        assert alerts.count() == 0, alerts.all_inner_texts()
        expect(table).to_have_count(1, timeout=60_000)
        cells = table.first.locator('[role="gridcell"]')
        expect(cells.filter(has_text=re.compile(r"^as is$"))).to_have_count(1, timeout=60_000)
        expect(cells.filter(has_text=re.compile(r"^control$"))).to_have_count(1)
        assert table.first.locator('[role="columnheader"]').filter(has_text=re.compile("^margin$")).count() == 1
        assert page.locator("text=Traceback").count() == 0
        browser.close()


def first_viewport_check(page, url: str, answer) -> dict:
    """Open `url` at 1400x900 and wait for `answer` (a locator): its box must start inside the first screen. Returns
    the box and the page's main height."""
    page.goto(url)
    answer.first.wait_for(timeout=120_000)
    page.wait_for_timeout(500)  # the rest of the page settles (the main height is read after it)
    box = answer.first.bounding_box()
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    assert box is not None and box["y"] < 900, f"{url}: the answer starts at y={box and box['y']:.0f}"
    assert page.locator("text=Traceback").count() == 0
    return {"box": box, "height": height}


def test_the_start_page_and_the_token_page_lead_with_their_answer(demo_server, tmp_path):
    """The start page's classes x SAEs heatmap and the token page's verdict line start in the first 1400x900 screen;
    the token page for `snake`, its details folded, is at most two screens tall (issue 28's height budget)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        first_viewport_check(page, demo_server + "/", page.locator(".js-plotly-plot"))
        # REFRESH_SCREENSHOT=1 pytest -k lead_with: the README's screenshot is this first screen
        page.screenshot(path=str(REPO / "assets" / "screenshot.png" if os.environ.get("REFRESH_SCREENSHOT")
                                 else tmp_path / "start.png"))
        token = first_viewport_check(page, demo_server + "/token?token=snake",
                                     page.get_by_text(re.compile(r"^Letter S: absorbed in \d+ of \d+ SAEs")))
        assert token["height"] <= 1800, f"the token page is {token['height']} px tall"
        # the Feature page's headline numbers, and the latent page's dashboard header
        first_viewport_check(page, demo_server + "/letter?sae=smollm2-l6-topk-4k-k32&letter=s",
                             page.get_by_text("mean absorption fraction", exact=True))
        first_viewport_check(page, demo_server + "/latent?sae=smollm2-l6-topk-4k-k32&latent=3783",
                             page.get_by_role("heading", name=re.compile(r"^Latent 3783")))
        browser.close()
