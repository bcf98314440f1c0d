"""Concurrent sessions against one explorer server: do 20 simultaneous deep links all render, how fast,
and what does each view cost the server?

Starts one Streamlit server the way `scripts/explore.sh` does (this venv's streamlit, headless, on a free
loopback port; `EXPLORER_DB` selects the database, default `assets/demo.duckdb`), then opens N
sessions at once in headless Debian chromium (playwright's async API; one browser, one context per
session, so every session has its own websocket and Streamlit session), each on a different deep link
(latent, letter, token, compare and browse pages, mixed over the SAEs).

A session's view is **fully rendered** when, in two checks 0.3 s apart, all of these hold:
  1. the app is connected and its script run is over: `[data-testid=stApp]` has
     `data-test-connection-state=CONNECTED` and `data-test-script-state=notRunning` (`initial` until
     the first run starts), and the running indicator (`stStatusWidgetRunningIcon` /
     `stStatusWidgetRunningManIcon`) is gone;
  2. no element is stale (`[data-stale=true]`, left over from a previous run);
  3. the page's main content is present: the latent page's highlighted top contexts
     (`div.ctx span.peak`), a data frame on the letter, token and browse pages, a plotly chart on the
     compare page;
  4. every plotly chart on the page has drawn (`svg.main-svg` inside each `stPlotlyChart`) and every
     data frame has its canvas (inside each `stDataFrame`).
A view whose run ended (condition 1) showing an exception (`[data-testid=stException]`) or an error
alert (`stAlertContentError`) counts as failed, not rendered. Time to first full render: from the
start of navigation to the first of the two checks; p50 and p95 are nearest-rank over the rendered
sessions; "websocket up" (the page and its JavaScript loaded, `CONNECTED`) splits off the browser-side
start. The server's CPU time (user + system, its children included) is read from psutil after the
browser contexts exist and before navigation starts, and again after the last session settles;
per view = that difference / sessions. The token links use held-out test words (a probe-training word
gets no per-SAE table), the browse links queries that match latents.

Bounded: `--timeout` caps the whole run (server start included); the server (its process group) is
stopped at the end in every case, on errors and Ctrl-C too.

    python bench/concurrency.py [--sessions 20] [--rounds 1] [--timeout 300] [--db assets/demo.duckdb]
                                [--kinds token,browse] [--file-watcher none] [--link '/compare?layer=6' ...]

`--rounds 2` opens a second wave of fresh sessions on the same server: warm caches. `--file-watcher none`
measures the server without Streamlit's file watcher: with the default (watchdog, recursive from the
repository root, .venv included), every open session keeps a watch, and heavy file activity anywhere
under the repository (a pip install, a build in data/) overflows inotify's queue and makes the watcher
walk the whole tree again, a busy core while sessions are open.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# What each page's main content is (condition 3 of a full render).
MAIN_CONTENT = {
    "overview": '[data-testid="stDataFrame"]',
    "latent": "div.ctx span.peak",
    "letter": '[data-testid="stDataFrame"]',
    "token": '[data-testid="stDataFrame"]',
    "browse": '[data-testid="stDataFrame"]',
    "compare": '[data-testid="stPlotlyChart"]',
}

# 20 different deep links over the demo database's SAEs (README, "Links are the API").
LINKS = [
    "/latent?sae=smollm2-l6-topk-4k-k32&latent=123",
    "/latent?sae=smollm2-l6-topk-1k-k16&latent=101",
    "/latent?sae=smollm2-l2-topk-1k-k32&latent=100",
    "/latent?sae=smollm2-l12-topk-1k-k32&latent=130",
    "/latent?sae=smollm2-l6-jumprelu-1k-l0-32&latent=146",
    "/letter?sae=smollm2-l6-topk-4k-k32&letter=s",
    "/letter?sae=smollm2-l6-topk-1k-k32&letter=u",
    "/letter?sae=smollm2-l6-topk-4k-k64&letter=h",
    "/letter?sae=smollm2-l2-topk-1k-k32&letter=w",
    "/token?token=green",  # held-out test words: the page's per-SAE table is shown
    "/token?token=stone",
    "/token?token=paper",
    "/token?token=light",
    "/compare",
    "/compare?saes=smollm2-l6-topk-1k-k16,smollm2-l6-topk-1k-k32,smollm2-l6-topk-1k-k64",
    "/compare?saes=smollm2-l2-topk-1k-k32,smollm2-l6-topk-1k-k32,smollm2-l12-topk-1k-k32",
    "/browse?sae=smollm2-l6-topk-4k-k32&q=water",  # queries with matches: the page's table is shown
    "/browse?sae=smollm2-l6-topk-1k-k32&q=ing&in=logits",
    "/browse?sae=smollm2-l6-topk-4k-k16&q=snake&in=contexts",
    "/browse?sae=smollm2-l6-topk-1k-k64&q=the",
]

STATE_JS = """(main) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return null;
  const finished = app.dataset.testConnectionState === 'CONNECTED' && app.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"],[data-testid="stStatusWidgetRunningManIcon"]');
  if (!finished) return null;
  const exceptions = document.querySelectorAll('[data-testid="stException"]').length;
  const errors = document.querySelectorAll('[data-testid="stAlertContentError"]').length;
  if (exceptions || errors) return {state: 'failed', exceptions, errors};
  if (document.querySelector('[data-stale="true"]')) return null;
  if (!document.querySelector(main)) return null;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) if (!c.querySelector('svg.main-svg')) return null;
  for (const d of document.querySelectorAll('[data-testid="stDataFrame"]')) if (!d.querySelector('canvas')) return null;
  return {state: 'rendered', exceptions: 0, errors: 0};
}"""

CONNECTED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.dataset.testConnectionState === 'CONNECTED';
}"""

MESSAGES_JS = """() => Array.from(document.querySelectorAll(
  '[data-testid="stException"], [data-testid="stAlertContentError"]')).map(e => e.innerText.slice(0, 300))"""


DIAGNOSIS_JS = """(main) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const count = (sel) => document.querySelectorAll(sel).length;
  const drawn = (outer, inner) => Array.from(document.querySelectorAll(outer)).filter(e => e.querySelector(inner)).length;
  return `connection ${app && app.dataset.testConnectionState}, script ${app && app.dataset.testScriptState}, `
    + `running icon ${count('[data-testid="stStatusWidgetRunningIcon"],[data-testid="stStatusWidgetRunningManIcon"]')}, `
    + `stale ${count('[data-stale="true"]')}, main content ${count(main)}, `
    + `charts ${drawn('[data-testid="stPlotlyChart"]', 'svg.main-svg')}/${count('[data-testid="stPlotlyChart"]')} drawn, `
    + `data frames ${drawn('[data-testid="stDataFrame"]', 'canvas')}/${count('[data-testid="stDataFrame"]')} drawn, `
    + `headings: ${Array.from(document.querySelectorAll('h1, h2, h3')).map(h => h.innerText).slice(0, 3).join(' / ')}`;
}"""


@dataclass
class Session:
    link: str
    state: str = "timeout"  # rendered | failed | timeout | error
    seconds: float | None = None  # to the first full render
    settled: float | None = None  # to its confirmation 0.3 s later
    connected: float | None = None  # to the app's websocket being up (the page's JS loaded and running)
    exceptions: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.link.split("?")[0].strip("/") or "overview"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def start_server(db: Path, port: int, file_watcher: str) -> subprocess.Popen:
    env = {**os.environ, "EXPLORER_DB": str(db)}
    cmd = [venv_python(), "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.port", str(port), "--server.address", "127.0.0.1"]
    if file_watcher != "default":
        cmd += ["--server.fileWatcherType", file_watcher]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group: stopped as a whole


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_healthy(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("streamlit did not answer /_stcore/health before the deadline")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree (terminated, waited-for children included)."""
    try:
        root = psutil.Process(pid)
        total = sum(root.cpu_times()[:4])  # user, system, children_user, children_system
        for child in root.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return float("nan")


def client_cpu_seconds() -> float:
    """This process's children: the playwright driver and chromium (the browser side of the load)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def make_page(browser, session: Session):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.on("pageerror", lambda error: session.page_errors.append(str(error)[:200]))
    return context, page


async def visit(page, base: str, session: Session, deadline: float) -> None:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    main = MAIN_CONTENT[session.kind]
    t0 = time.monotonic()
    try:
        await page.goto(base + session.link, wait_until="commit", timeout=max(1.0, deadline - t0) * 1000)
        await page.wait_for_function(CONNECTED_JS, polling=100, timeout=max(1.0, deadline - time.monotonic()) * 1000)
        session.connected = time.monotonic() - t0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            handle = await page.wait_for_function(STATE_JS, arg=main, polling=200, timeout=remaining * 1000)
            first = await handle.json_value()
            seen = time.monotonic()
            await asyncio.sleep(0.3)
            again = await page.evaluate(STATE_JS, main)
            if again and again["state"] == first["state"]:
                break
        session.state, session.seconds, session.settled = first["state"], seen - t0, time.monotonic() - t0
        session.exceptions, session.errors = first["exceptions"], first["errors"]
        if session.state == "failed":
            session.messages = await page.evaluate(MESSAGES_JS)
    except (TimeoutError, PlaywrightTimeout):
        session.state = "timeout"
        try:  # what was missing, for the report
            session.messages = [await asyncio.wait_for(page.evaluate(DIAGNOSIS_JS, main), timeout=10)]
        except (asyncio.TimeoutError, PlaywrightError) as error:
            session.messages = [f"no diagnosis: {type(error).__name__}"]
    except PlaywrightError as error:
        session.state = "error"
        session.messages = [f"{type(error).__name__}: {str(error)[:300]}"]


async def run_round(browser, base: str, links: list[str], server_pid: int, deadline: float) -> dict:
    sessions = [Session(link) for link in links]
    made = await asyncio.gather(*(make_page(browser, s) for s in sessions))  # before the clock starts
    try:
        server_before, client_before = cpu_seconds(server_pid), client_cpu_seconds()
        t0 = time.monotonic()
        await asyncio.gather(*(visit(page, base, s, deadline) for (_, page), s in zip(made, sessions)))
        wall = time.monotonic() - t0
        server_cpu, client_cpu = cpu_seconds(server_pid) - server_before, client_cpu_seconds() - client_before
    finally:
        await asyncio.gather(*(context.close() for context, _ in made), return_exceptions=True)
    return {"sessions": sessions, "wall": wall, "server_cpu": server_cpu, "client_cpu": client_cpu}


def report(index: int, result: dict) -> None:
    sessions: list[Session] = result["sessions"]
    rendered = [s for s in sessions if s.state == "rendered"]
    times = [s.seconds for s in rendered]
    print(f"\nround {index}: rendered {len(rendered)}/{len(sessions)}; "
          f"exceptions {sum(s.exceptions for s in sessions)}, error alerts {sum(s.errors for s in sessions)}, "
          f"failed {sum(s.state == 'failed' for s in sessions)}, timed out {sum(s.state == 'timeout' for s in sessions)}, "
          f"browser errors {sum(s.state == 'error' for s in sessions)}, JS page errors {sum(len(s.page_errors) for s in sessions)}")
    connected = [s.connected for s in sessions if s.connected is not None]
    if connected:
        print(f"  time to the app's websocket up (browser side: page and JS loaded): p50 {nearest_rank(connected, 0.5):.1f} s, "
              f"p95 {nearest_rank(connected, 0.95):.1f} s")
    if times:
        print(f"  time to first full render: p50 {nearest_rank(times, 0.5):.1f} s, p95 {nearest_rank(times, 0.95):.1f} s, "
              f"min {min(times):.1f} s, max {max(times):.1f} s")
    print(f"  wall time {result['wall']:.1f} s; server CPU {result['server_cpu']:.1f} s = "
          f"{result['server_cpu'] / len(sessions):.2f} s per session view; browser CPU {result['client_cpu']:.1f} s")
    for s in sorted(sessions, key=lambda s: (s.kind, s.link)):
        shown = f"{s.seconds:5.1f} s" if s.seconds is not None else "    - "
        settled = f" (connected {s.connected:5.1f} s, settled {s.settled:5.1f} s)" if s.settled is not None else ""
        print(f"    {s.state:9s} {shown}{settled}  {s.link}")
        for message in s.messages + s.page_errors:
            print("        " + message.replace("\n", " | ")[:300])


async def main_async(args: argparse.Namespace, deadline: float) -> int:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        print("Debian chromium is required (apt-get install chromium)", file=sys.stderr)
        return 2
    pool = [link for link in (args.link or LINKS)
            if not args.kinds or (link.split("?")[0].strip("/") or "overview") in args.kinds.split(",")]
    links = [pool[i % len(pool)] for i in range(args.sessions)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.monotonic()
    server = start_server(args.db, port, args.file_watcher)
    try:
        wait_healthy(base, server, deadline)
        ready = time.monotonic() - t_start
        startup_cpu = cpu_seconds(server.pid)
        idle_before = cpu_seconds(server.pid)
        await asyncio.sleep(2.0)
        idle = (cpu_seconds(server.pid) - idle_before) / 2.0
        import streamlit
        print(f"concurrency: {args.sessions} sessions on one server (streamlit {streamlit.__version__}, {args.db}), "
              f"file watcher {args.file_watcher}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run")
        print(f"server ready in {ready:.1f} s (CPU {startup_cpu:.1f} s); idle CPU {idle * 100:.1f} % of a core")
        failures = 0
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            print(f"browser: {CHROMIUM} {browser.version}, headless, one context per session")
            try:
                for index in range(1, args.rounds + 1):
                    result = await run_round(browser, base, links, server.pid, deadline)
                    report(index, result)
                    failures += sum(s.state != "rendered" for s in result["sessions"])
            finally:
                await browser.close()
        return 1 if failures else 0
    finally:
        stop_server(server)
        print(f"server stopped (exit {server.returncode}); total {time.monotonic() - t_start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (links repeat past 20)")
    parser.add_argument("--rounds", type=int, default=1, help="waves of fresh sessions on the same server")
    parser.add_argument("--kinds", default="", help="only these pages, e.g. token,browse (default: all five)")
    parser.add_argument("--link", action="append", default=None, metavar="URL",
                        help="open this deep link instead of the 20 demo links (repeatable), e.g. '/?group=layer'")
    parser.add_argument("--file-watcher", default="default", choices=["default", "auto", "watchdog", "poll", "none"],
                        help="--server.fileWatcherType (default: not set, as scripts/explore.sh)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--db", type=Path, default=Path(os.environ.get("EXPLORER_DB", REPO / "assets" / "demo.duckdb")))
    args = parser.parse_args()
    if not args.db.exists():
        parser.error(f"no database at {args.db}")
    args.db = args.db.resolve()
    deadline = time.monotonic() + args.timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks (server stop) run on SIGTERM too
    try:
        code = asyncio.run(asyncio.wait_for(main_async(args, deadline), timeout=args.timeout + 30))
    except (asyncio.TimeoutError, TimeoutError):
        print(f"gave up: the run passed --timeout {args.timeout:.0f} s", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
