"""A real browser (Debian chromium via playwright) opens a shared latent URL and finds the
highlighted contexts."""

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

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tiny_db):
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


def test_shared_latent_url_shows_highlighted_contexts(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for the browser test (apt-get install chromium)")
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
