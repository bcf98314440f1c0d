"""How the SAE list pages (overview, compare) cost the server as a database grows to hundreds of SAEs.

Copies the demo database and replicates its SAE rows (`saes`, `sae_absorption`, `sae_letters`: what the two
pages read) into N SAEs spread over 26 layers, then renders each page in AppTest with warm caches, unfiltered
and filtered to one layer, and prints p50/p95 server-side render time. The per-latent tables are not
replicated: these two pages do not read them.

    python bench/list_pages_scale.py [--saes 400] [--renders 15] [--keep data/many.duckdb]

Browser time to a full render on the same database (headless chromium, one session per link):

    python bench/concurrency.py --db data/many.duckdb --sessions 6 --rounds 2 --link / --link '/?layer=6' \
        --link '/?group=layer' --link /compare --link '/compare?layer=6' --link '/compare?group=width'
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from concurrency import nearest_rank  # noqa: E402  (the same p50/p95 rule as the browser bench)

from backend.database import DEFAULT_DB_PATH  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
# Copy i of every SAE gets key `{key}-r{i}` and layer i % 26, so grouping and filtering by layer have work to do.
# `$copy` is bound to the copy number.
REPLICATE = {
    "sae_numbers": "SELECT sae_key || '-r' || $copy, sae_num + 1000 * $copy FROM sae_numbers WHERE sae_key NOT LIKE '%-r%'",
    "saes": "SELECT * REPLACE (sae_key || '-r' || $copy AS sae_key, sae_num + 1000 * $copy AS sae_num, ($copy % 26) AS layer, "
            "'blocks.' || ($copy % 26) || '.hook_resid_post' AS hook_name) FROM saes WHERE sae_key NOT LIKE '%-r%'",
    "sae_absorption": "SELECT * REPLACE (sae_key || '-r' || $copy AS sae_key) FROM sae_absorption "
                      "WHERE sae_key NOT LIKE '%-r%'",
    "sae_letters": "SELECT * REPLACE (sae_key || '-r' || $copy AS sae_key) FROM sae_letters "
                   "WHERE sae_key NOT LIKE '%-r%'",
}


def replicated_database(source: Path, target: Path, n_saes: int) -> int:
    shutil.copy(source, target)
    con = duckdb.connect(str(target))
    base = con.execute("SELECT count(*) FROM saes").fetchone()[0]
    copies = max(1, -(-n_saes // base) - 1)
    for i in range(1, copies + 1):
        for table, select in REPLICATE.items():
            con.execute(f"INSERT INTO {table} {select}", {"copy": i})  # our own table names
    total = con.execute("SELECT count(*) FROM saes").fetchone()[0]
    con.close()
    return total


def scan_component_manifests_once() -> None:
    """AppTest rescans every installed distribution for components on each new session (~0.8 s); a server
    does it once. Cached here, as tests/app/conftest.py does, so only the page's own work is timed."""
    import functools

    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:
        return
    manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)


def render_ms(page: str, params: dict[str, str], renders: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(renders + 1):  # the first render warms the caches and is not counted
        at = AppTest.from_file(APP, default_timeout=180)
        at.switch_page(f"views/{page}.py")
        at.query_params = dict(params)
        start = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - start) * 1000)
        assert not at.exception, f"{page} {params}: {at.exception[0].message}"
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saes", type=int, default=400)
    parser.add_argument("--renders", type=int, default=15)
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the replicated database here and keep it (e.g. for bench/concurrency.py --db)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.keep or Path(scratch) / "many.duckdb"
        total = replicated_database(DEFAULT_DB_PATH, path, args.saes)
        os.environ["EXPLORER_DB"] = str(path)
        scan_component_manifests_once()
        print(f"{total} SAEs (the demo's rows replicated over 26 layers); {args.renders} warm renders each")
        for page, params in (("overview", {}), ("overview", {"layer": "6"}), ("overview", {"group": "layer"}),
                             ("compare", {}), ("compare", {"layer": "6"}), ("compare", {"group": "width"})):
            times = render_ms(page, params, args.renders)
            print(f"  {page:9s} {str(params):20s} p50 {statistics.median(times):6.0f} ms   "
                  f"p95 {nearest_rank(times, 0.95):6.0f} ms")


if __name__ == "__main__":
    main()
