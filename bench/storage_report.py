"""What a database holds and what it costs on disk: rows and compressed bytes per table (each table, with its
keys' indexes, copied alone into a fresh file with the build's block size, so the bytes are that table's own), the
file's MB per 1,000 latents (the budget: <= 1), the dashboard token counts, and the build's own seconds per stage as
it stored them.

    python bench/storage_report.py                    # assets/demo.duckdb
    python bench/storage_report.py --db data/x.duckdb
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.database import DEFAULT_DB_PATH  # noqa: E402
from contract.schema import STORAGE_ORDER, ddl_statements  # noqa: E402
from precompute.storage.writer import COMPACT_BLOCK_SIZE  # noqa: E402

TABLE_DDL = {re.match(r"CREATE TABLE (\w+)", s).group(1): s for s in ddl_statements() if s.startswith("CREATE TABLE")}

TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
SAE_TOKENS = "SELECT sae_key, n_tokens, corpus, d_sae FROM saes ORDER BY layer, d_sae, l0, sae_key"
PROBE_RUN_SECONDS = "SELECT probe_run_id, hook_name || ' ' || task, n_words, seconds FROM probe_runs ORDER BY hook_name, task"
SAE_SECONDS = "SELECT sae_key || ' ' || task, seconds FROM sae_absorption ORDER BY sae_key, task"

# What each table's size grows with: the latents (one or more rows per latent), the SAEs (rows per SAE sized by
# the vocabulary or the words, not by the width), or neither (once per model or hook: shared by its SAEs).
PER_LATENT = ("latents", "contexts", "window_acts", "latent_letter_cos", "latent_matches", "latent_scores")
PER_SAE = ("saes", "sae_numbers", "score_validation", "sae_absorption", "sae_letters", "sae_letter_folds", "sae_letter_k", "absorption_words",
           "token_occurrences", "token_latents", "token_letters")
PROJECTED_WIDTHS = (1_024, 4_096, 16_384, 65_536, 1_048_576)


def print_growth(sizes: dict[str, int], n_saes: int, n_latents: int) -> None:
    """The database split by what it grows with, and what one more SAE of a given width would add at these
    rates (a projection from this database's measured parts, not a measurement at that width)."""
    per_latent = sum(sizes.get(t, 0) for t in PER_LATENT) / 1e6 / (n_latents / 1000)
    per_sae = sum(sizes.get(t, 0) for t in PER_SAE) / 1e6 / n_saes
    shared = sum(v for t, v in sizes.items() if t not in PER_LATENT + PER_SAE) / 1e6
    print(f"\ngrowth: {per_latent:.3f} MB per 1,000 latents ({', '.join(PER_LATENT)}) + {per_sae:.3f} MB per SAE "
          f"(absorption words, running-text token tables, per-letter rows) + {shared:.2f} MB once per model/hook")
    projected = ", ".join(f"{w:,}: {per_latent + per_sae / (w / 1000):.3f}" for w in PROJECTED_WIDTHS)
    print(f"projected MB per 1,000 latents for one more SAE of width (at these rates): {projected}")


def table_bytes(source: Path, table: str, scratch: Path) -> int:
    """Bytes of one table on its own, indexes included: created by its own DDL statement (so with its keys) in an
    empty file with the build's block size, then filled in the order a build stores it."""
    target = scratch / f"{table}.duckdb"
    empty = scratch / "empty.duckdb"
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(source)])  # paths bound; table names are the catalog's
        con.execute(f"ATTACH ? AS one (BLOCK_SIZE {COMPACT_BLOCK_SIZE})", [str(target)])
        con.execute("USE one")
        statement = TABLE_DDL.get(table)
        if statement is None:  # a table this schema version does not define: as the source stores it
            con.execute(f"CREATE TABLE one.{table} AS SELECT * FROM src.{table} LIMIT 0")
        else:
            con.execute(statement)
        con.execute(f"INSERT INTO one.{table} SELECT * FROM src.{table} ORDER BY {STORAGE_ORDER.get(table, 'rowid')}")
        con.execute("USE memory")
        con.execute("DETACH one")
        con.execute(f"ATTACH ? AS blank (BLOCK_SIZE {COMPACT_BLOCK_SIZE})", [str(empty)])
        con.execute("DETACH blank")
        return target.stat().st_size - empty.stat().st_size
    finally:
        con.close()
        target.unlink(missing_ok=True)
        empty.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    args = parser.parse_args()
    con = duckdb.connect(str(args.db), read_only=True)
    tables = [row[0] for row in con.execute(TABLES).fetchall()]
    saes = con.execute(SAE_TOKENS).fetchall()
    n_latents = sum(row[3] for row in saes)
    print(f"{args.db}: {args.db.stat().st_size / 1e6:.2f} MB, {len(saes)} SAEs, {n_latents:,} latents")
    with tempfile.TemporaryDirectory() as scratch:
        sizes = {t: table_bytes(args.db, t, Path(scratch)) for t in tables}
    print(f"\n{'table':20s} {'rows':>12s} {'MB':>8s}")
    for table in tables:
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # names from the catalog
        print(f"{table:20s} {rows:12,d} {sizes[table] / 1e6:8.2f}")
    total = sum(sizes.values())
    print(f"{'all tables':20s} {'':12s} {total / 1e6:8.2f}   ({total / 1e6 / (n_latents / 1000):.3f} MB per 1,000 latents)")
    file_mb = args.db.stat().st_size / 1e6
    print(f"{'the file':20s} {'':12s} {file_mb:8.2f}   ({file_mb / (n_latents / 1000):.3f} MB per 1,000 latents: the budget's measure)")
    print_growth(sizes, len(saes), n_latents)
    print("\ndashboard tokens per SAE:")
    for key, n_tokens, corpus, _ in saes:
        print(f"  {key}: {n_tokens:,} tokens ({corpus})")
    if "probe_runs" in tables:
        print("\nbuild seconds as stored (shared per probe run / per SAE):")
        for run_id, hook, n_words, seconds in con.execute(PROBE_RUN_SECONDS).fetchall():
            stages = json.loads(seconds)
            print(f"  run {run_id} {hook} ({n_words:,} words): {sum(stages.values()):.0f} s  {stages}")
        for key, seconds in con.execute(SAE_SECONDS).fetchall():
            stages = json.loads(seconds)
            print(f"  {key}: {sum(stages.values()):.0f} s  {stages}")
    con.close()


if __name__ == "__main__":
    main()
