"""What one more SAE of 16,384 latents adds to the demo database, measured by building it (not projected).

No 16k SAE was trained for the embedded model (a CPU run takes hours), so the SAE is made from the shipped
`smollm2-l6-topk-4k-k32`: every latent and three noisy copies of it (encoder and decoder rows plus Gaussian noise
of 30 % of the row's norm, TopK k = 32). Its latents fire at rates like a trained SAE's, so its dashboards,
absorption and token rows are sized like a real one's; its latents are not new features. Steps, each skipped
when its output exists (rerun to resume):

  1. data/growth/smollm2-l6-topk-16k-k32-noisy/  the SAE folder (sae-lens format)
  2. data/growth/demo-plus-16k.duckdb            a copy of the demo with the SAE built in (`precompute build`,
                                                 the demo's settings: 10 ablation candidates per letter)
  3. the bytes it added, per table (each table copied alone into a fresh file, as bench/storage_report.py)

    python bench/width_growth.py [--copies 4] [--noise 0.3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from storage_report import TABLES, table_bytes  # noqa: E402

from backend.database import DEFAULT_DB_PATH  # noqa: E402

SOURCE_SAE = ROOT / "assets/saes/smollm2-l6-topk-4k-k32"
OUT = ROOT / "data/growth"


def noisy_copies_sae(source: Path, target: Path, copies: int, noise: float, seed: int = 0) -> None:
    """[d_in, copies * d_sae] encoder and [copies * d_sae, d_in] decoder: each source latent, then its copies."""
    import torch
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(source), device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(seed)

    def jitter(rows: torch.Tensor) -> torch.Tensor:  # rows [n, d]: noise scaled to each row's norm
        scale = noise * rows.norm(dim=-1, keepdim=True) / rows.shape[-1] ** 0.5
        return rows + scale * torch.randn(rows.shape, generator=generator)

    with torch.no_grad():
        W_dec = torch.cat([sae.W_dec] + [jitter(sae.W_dec) for _ in range(copies - 1)])  # [copies * d_sae, d_in]
        W_enc = torch.cat([sae.W_enc.T] + [jitter(sae.W_enc.T) for _ in range(copies - 1)]).T  # [d_in, copies * d_sae]
        b_enc = sae.b_enc.repeat(copies)
    cfg = sae.cfg.to_dict()
    cfg["d_sae"] = copies * sae.cfg.d_sae
    bigger = SAE.from_dict(cfg)
    with torch.no_grad():
        bigger.W_dec.copy_(W_dec)
        bigger.W_enc.copy_(W_enc)
        bigger.b_enc.copy_(b_enc)
        bigger.b_dec.copy_(sae.b_dec)
    target.mkdir(parents=True, exist_ok=True)
    bigger.save_model(str(target))


def sae_built(db: Path, key: str) -> bool:
    if not db.exists():
        return False
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM saes WHERE sae_key = ?", [key]).fetchone()[0] > 0
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.3)
    args = parser.parse_args()
    key = f"smollm2-l6-topk-{4 * args.copies}k-k32-noisy"
    folder, db = OUT / key, OUT / f"demo-plus-{4 * args.copies}k.duckdb"
    if not (folder / "cfg.json").exists():
        noisy_copies_sae(SOURCE_SAE, folder, args.copies, args.noise)
        print(f"wrote {folder}")
    if not sae_built(db, key):
        if not db.exists():  # copied whole or not at all: a killed copy must not look like a started build
            partial = db.with_name(f".{db.name}.copying")
            partial.write_bytes(DEFAULT_DB_PATH.read_bytes())
            partial.replace(db)
        subprocess.run([sys.executable, "-m", "precompute", "build", "--sae", f"{key}={folder}", "--db", str(db),
                        "--ablation-candidates", "10"], cwd=ROOT, check=True)
    con = duckdb.connect(str(db), read_only=True)
    tables = [row[0] for row in con.execute(TABLES).fetchall()]
    d_sae = con.execute("SELECT d_sae FROM saes WHERE sae_key = ?", [key]).fetchone()[0]
    con.close()
    with tempfile.TemporaryDirectory() as scratch:
        before = {t: table_bytes(DEFAULT_DB_PATH, t, Path(scratch)) for t in tables}
        after = {t: table_bytes(db, t, Path(scratch)) for t in tables}
    added = {t: after[t] - before.get(t, 0) for t in tables}
    print(f"\n{key}: {d_sae:,} latents added to {DEFAULT_DB_PATH.name}")
    for table in sorted(tables, key=lambda t: -added[t]):
        if added[table]:
            print(f"  {table:20s} {added[table] / 1e6:+8.2f} MB")
    total = sum(added.values())
    print(f"  {'all tables':20s} {total / 1e6:+8.2f} MB   ({total / 1e6 / (d_sae / 1000):.3f} MB per 1,000 latents)")


if __name__ == "__main__":
    main()
