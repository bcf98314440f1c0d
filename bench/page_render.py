"""Time to full render of each page in headless Chromium, and its height: a Streamlit server on a database (the demo
by default), each URL opened in a fresh tab `--loads` times; "rendered" is the app's script state back to
notRunning with the page's title on screen. Prints p50/p95 per page, the page height in px at 1400x900 and the
machine's load average.

    python bench/page_render.py                  # the demo, 10 loads per page
    python bench/page_render.py --loads 3 --db data/other.duckdb
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URLS = {
    "overview": "/",
    "latent": "/latent?sae=smollm2-l6-topk-4k-k32&latent=3783",
    "browse": "/browse?sae=smollm2-l6-topk-4k-k32",
    "feature": "/letter?sae=smollm2-l6-topk-4k-k32&letter=s",
    "token": "/token?token=snake",
    "compare": "/compare",
    "live": "/live?sae=smollm2-l6-topk-4k-k32&text=The%20snake%20slid%20under%20the%20warm%20rock",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RENDERED = ("() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
            " return app && app.getAttribute('data-test-script-state') === 'notRunning'"
            " && document.querySelector('h1') !== null; }")
HEIGHT = ("() => { const main = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
          " return main.scrollHeight; }")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "EXPLORER_DB": str(db)}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless",
                               "true", "--server.port", str(port), "--browser.gatherUsageStats", "false",
                               "--server.fileWatcherType", "none"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not come up")


def measure(base: str, path: str, loads: int, browser) -> tuple[list[float], int]:
    times, height = [], 0
    for _ in range(loads + 1):  # the first load warms the server's caches for this URL: not counted
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.goto(base + path)
        page.wait_for_function(RENDERED, timeout=300_000, polling=50)
        times.append(time.perf_counter() - start)
        height = page.evaluate(HEIGHT)
        page.close()
    return times[1:], height


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=REPO / "assets" / "demo.duckdb")
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--pages", nargs="*", default=list(URLS), choices=list(URLS))
    args = parser.parse_args()
    port = free_port()
    server = start_server(args.db.resolve(), port)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs · {args.loads} loads a "
          "page after one warm-up load · headless Chromium at 1400x900\n")
    print("| page | URL | p50 s | p95 s | height px |\n| --- | --- | ---: | ---: | ---: |")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name in args.pages:
                times, height = measure(f"http://127.0.0.1:{port}", URLS[name], args.loads, browser)
                p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
                print(f"| {name} | `{URLS[name]}` | {statistics.median(times):.2f} | {p95:.2f} | {height:,} |",
                      flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
