"""Every page's server-side render time on a database the size of a real release: the demo's rows replicated to
50 SAEs x 16,384 latents over 10 hooks (0.82 M latents), then AppTest renders with warm caches, p50/p95 per page.

Replication: SAE `scale-hH-sS` (hook blocks.H.hook_resid_post, layer H) holds 4 copies of every row of the
shipped `smollm2-l6-topk-4k-k32` (latent ids + 4,096 x copy), its absorption rows against a copy of that hook's
probe run renamed for hook H, its running-text rows, and matches to the other 4 SAEs at its hook. The content is
the demo's, the sizes a release's: it measures the queries and the pages, not new results. The database is
kept (`--db`) and reused when it exists (building it takes a few minutes).

    python bench/scale_views.py [--db data/scale.duckdb] [--renders 10] [--pages latent,token]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from list_pages_scale import nearest_rank, render_ms, scan_component_manifests_once  # noqa: E402

from backend.database import DEFAULT_DB_PATH  # noqa: E402

SOURCE = "smollm2-l6-topk-4k-k32"
HOOKS, SAES_PER_HOOK, COPIES, WIDTH = 10, 5, 4, 4096

# $key/$num: the new SAE and its number, $src_num the source SAE's, $hook/$layer its hook, $run the probe run it was
# measured against, $copy/$offset the latent copy.
PER_LATENT = {  # table -> SELECT with every latent id shifted by $offset
    "latents": "SELECT * REPLACE ($num AS sae_num, latent + $offset AS latent) FROM latents WHERE sae_num = $src_num",
    "contexts": "SELECT * REPLACE ($num AS sae_num, latent + $offset AS latent) FROM contexts WHERE sae_num = $src_num",
    "window_acts": "SELECT * REPLACE ($num AS sae_num, latent + $offset AS latent) FROM window_acts "
                   "WHERE sae_num = $src_num",
    # (blocks of COS_BLOCK latents: the copies' offsets are multiples of the source's width, a multiple of it)
    "latent_letter_cos": "SELECT * REPLACE ($num AS sae_num, $run AS probe_run_id, first_latent + $offset AS first_latent) "
                         "FROM latent_letter_cos WHERE sae_num = $src_num AND task = 'first_letter'",
}
PER_SAE = {  # table -> SELECT of the source SAE's rows renamed
    "sae_numbers": "SELECT $key, $num",
    "saes": "SELECT * REPLACE ($key AS sae_key, $num AS sae_num, $hook AS hook_name, $layer AS layer, d_sae * 4 AS d_sae) "
            "FROM saes WHERE sae_key = $source",
    "sae_absorption": "SELECT * REPLACE ($key AS sae_key, $run AS probe_run_id, $hook AS hook_name) "
                      "FROM sae_absorption WHERE sae_key = $source AND task = 'first_letter'",
    "sae_letters": "SELECT * REPLACE ($key AS sae_key, $run AS probe_run_id) FROM sae_letters WHERE sae_key = $source AND task = 'first_letter'",
    "sae_letter_folds": "SELECT * REPLACE ($key AS sae_key, $run AS probe_run_id) FROM sae_letter_folds "
                        "WHERE sae_key = $source AND task = 'first_letter'",
    "sae_letter_k": "SELECT * REPLACE ($key AS sae_key, $run AS probe_run_id) FROM sae_letter_k WHERE sae_key = $source AND task = 'first_letter'",
    "absorption_words": "SELECT * REPLACE ($num AS sae_num, $run AS probe_run_id) FROM absorption_words "
                        "WHERE sae_num = $src_num AND task = 'first_letter'",
    "absorption_split_acts": "SELECT * REPLACE ($num AS sae_num) FROM absorption_split_acts "
                             "WHERE sae_num = $src_num AND task = 'first_letter'",
    "token_occurrences": "SELECT * REPLACE ($num AS sae_num) FROM token_occurrences WHERE sae_num = $src_num",
    "token_latents": "SELECT * REPLACE ($num AS sae_num) FROM token_latents WHERE sae_num = $src_num",
    "token_letters": "SELECT * REPLACE ($num AS sae_num) FROM token_letters WHERE sae_num = $src_num",
}
PER_HOOK = {  # the source SAE's probe run, copied for hook $hook as run $run
    "probe_runs": "SELECT * REPLACE ($run AS probe_run_id, $hook AS hook_name) FROM probe_runs WHERE probe_run_id = $src_run",
    "letter_probes": "SELECT * REPLACE ($run AS probe_run_id, $hook AS hook_name) FROM letter_probes "
                     "WHERE probe_run_id = $src_run",
    "probe_folds": "SELECT * REPLACE ($run AS probe_run_id) FROM probe_folds WHERE probe_run_id = $src_run",
    "probe_words": "SELECT * REPLACE ($run AS probe_run_id) FROM probe_words "
                   "WHERE probe_run_id = $src_run",
    "probe_prefixes": "SELECT * REPLACE ($run AS probe_run_id, $hook AS hook_name) FROM probe_prefixes "
                      "WHERE probe_run_id = $src_run",
}
MATCHES = """
SELECT $num AS sae_num, latent + $offset AS latent, $other AS other_sae_num, other_latent, cosine
FROM latent_matches WHERE sae_num = $src_num AND other_sae_num = $demo_other
"""


def bound(sql: str, values: dict) -> dict:
    """The named parameters a statement uses (DuckDB rejects unused ones)."""
    return {name: value for name, value in values.items() if f"${name}" in sql}


def build(path: Path) -> None:
    work = path.with_suffix(".building")
    work.write_bytes(DEFAULT_DB_PATH.read_bytes())
    con = duckdb.connect(str(work))
    src_run = con.execute("SELECT probe_run_id FROM sae_absorption WHERE sae_key = ? AND task = 'first_letter'",
                          [SOURCE]).fetchone()[0]
    src_num = con.execute("SELECT sae_num FROM sae_numbers WHERE sae_key = ?", [SOURCE]).fetchone()[0]
    demo_others = [row[0] for row in con.execute(
        "SELECT DISTINCT other_sae_num FROM latent_matches WHERE sae_num = ? ORDER BY 1", [src_num]).fetchall()]
    for h in range(HOOKS):
        hook, run = f"blocks.{h}.hook_resid_post", f"{src_run}-h{h}"
        common = {"hook": hook, "layer": h, "run": run, "source": SOURCE, "src_run": src_run, "src_num": src_num}
        for table, sql in PER_HOOK.items():
            con.execute(f"INSERT INTO {table} {sql}", bound(sql, common))  # table names are our own constants
        keys = [f"scale-h{h}-s{s}" for s in range(SAES_PER_HOOK)]
        numbers = {key: 1000 + SAES_PER_HOOK * h + s for s, key in enumerate(keys)}  # after the demo's own
        for s, key in enumerate(keys):
            values = {**common, "key": key, "num": numbers[key]}
            for table, sql in PER_SAE.items():
                con.execute(f"INSERT INTO {table} {sql}", bound(sql, values))
            for copy in range(COPIES):
                shifted = {**values, "offset": copy * WIDTH}
                for table, sql in PER_LATENT.items():
                    con.execute(f"INSERT INTO {table} {sql}", bound(sql, shifted))
                others = [k for k in keys if k != key]
                for other, demo_other in zip(others, demo_others):
                    con.execute(f"INSERT INTO latent_matches {MATCHES}",
                                bound(MATCHES, {**shifted, "other": numbers[other], "demo_other": demo_other}))
        print(f"  hook {h + 1}/{HOOKS} replicated", flush=True)
    con.execute("CHECKPOINT")
    con.close()
    work.rename(path)


VIEWS = (
    ("overview", {}), ("overview", {"group": "layer"}),
    ("latent", {"sae": "scale-h7-s3", "latent": "12000"}),
    ("browse", {"sae": "scale-h7-s3"}), ("browse", {"sae": "scale-h7-s3", "q": "water"}),
    ("letter", {"sae": "scale-h7-s3", "letter": "s"}),
    ("token", {"token": "snake"}), ("token", {"token": "stone"}),
    ("compare", {}), ("compare", {"layer": "7"}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "data/scale.duckdb")
    parser.add_argument("--renders", type=int, default=10)
    parser.add_argument("--pages", default="", help="only these pages, e.g. token,letter")
    args = parser.parse_args()
    if not args.db.exists():
        start = time.perf_counter()
        build(args.db)
        print(f"built {args.db} in {time.perf_counter() - start:.0f} s")
    con = duckdb.connect(str(args.db), read_only=True)
    n_saes, n_latents = con.execute("SELECT count(*), sum(d_sae) FROM saes").fetchone()
    n_contexts = con.execute("SELECT count(*) FROM contexts").fetchone()[0]
    con.close()
    print(f"{args.db}: {n_saes} SAEs, {n_latents:,} latents, {n_contexts:,} contexts, "
          f"{args.db.stat().st_size / 1e9:.2f} GB; {args.renders} warm renders per view")
    os.environ["EXPLORER_DB"] = str(args.db)
    scan_component_manifests_once()
    for page, params in VIEWS:
        if args.pages and page not in args.pages.split(","):
            continue
        times = render_ms(page, params, args.renders)
        print(f"  {page:9s} {str(params):48s} p50 {statistics.median(times):6.0f} ms   "
              f"p95 {nearest_rank(times, 0.95):6.0f} ms", flush=True)


if __name__ == "__main__":
    main()
