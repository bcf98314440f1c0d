"""A real browser (Debian chromium via playwright) opens shared URLs: a latent's highlighted contexts,
and the compare page's charts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def server(tiny_db):  # one server for the module: starting streamlit is most of a test's time
    port = free_port()
    env = {**os.environ, "EXPLORER_DB": str(tiny_db)}
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
