"""Peak memory of one `precompute build` as the SAE widens (issue "Real releases at real scale", §4): a random TopK
SAE (k = 32, unit decoder rows, encoder = decoder transposed) at the embedded model's main hook, per width, built
alone into a fresh database with a small token count and a seeded word subset, in a subprocess whose process tree's
resident memory is sampled every 0.1 s. Prints the peak and, for comparison, the size of the dense
[words x latents] float32 word codes for the whole vocabulary at that width (what the absorption stage held before
its codes became sparse; issue 11 §4).

Decoder neighbours are O(d_sae^2) compute (in blocks, so O(block x d_sae) memory): 4e13 multiply-adds at 262,144
latents, most of an hour on two CPU cores. --no-neighbors-from skips them from that width up (the build's
--neighbors 0); the memory of their blocks is the same MAX_BLOCK_ELEMENTS as the dashboards' encoding blocks.

    python bench/memory_by_width.py [--widths 4096,16384,65536,262144] [--words 2000] [--rows 100000:100032]
                                    [--no-neighbors-from 262144]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HOOK = "blocks.6.hook_resid_post"
VOCABULARY_WORDS = 47_078  # the embedded model's alphabetic single-token words (README)


def random_topk_sae(folder: Path, d_sae: int, seed: int = 0, hook_name: str | None = None,
                    k: int | None = None) -> None:
    """A random TopK SAE on the embedded model, saved in sae-lens's format: the shipped 4k-k32's config (its hook and
    k unless given), unit decoder rows, encoder = decoder transposed."""
    import torch
    from sae_lens import SAE

    template = SAE.load_from_disk(str(ROOT / "assets/saes/smollm2-l6-topk-4k-k32"), device="cpu", dtype="float32")
    cfg = template.cfg.to_dict()
    cfg["d_sae"] = d_sae
    if k is not None:
        cfg["k"] = k
    if hook_name is not None:
        cfg["metadata"] = {**cfg["metadata"], "hook_name": hook_name}
    sae = SAE.from_dict(cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        W_dec = torch.nn.functional.normalize(torch.randn(d_sae, cfg["d_in"], generator=generator), dim=-1)
        sae.W_dec.copy_(W_dec)
        sae.W_enc.copy_(W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.copy_(template.b_dec)  # centred like the trained SAE, so TopK does not pick one direction always
    sae.save_model(str(folder))


def peak_rss_bytes(command: list[str]) -> tuple[int, float, int]:
    """(peak resident bytes over the process tree, seconds, exit code)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return peak, time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="4096,16384,65536,262144")
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--rows", default="100000:100032")
    parser.add_argument("--no-neighbors-from", type=int, default=None, metavar="WIDTH",
                        help="build SAEs at least this wide without decoder neighbours (--neighbors 0)")
    args = parser.parse_args()
    print(f"random TopK k=32 SAEs at {HOOK}; {args.words:,} words, corpus rows {args.rows}")
    print(f"  {'width':>9}  {'peak RSS':>9}  {'seconds':>7}  exit  neighbours  {'dense vocab codes':>17}")
    with tempfile.TemporaryDirectory() as scratch:
        for width in (int(w) for w in args.widths.split(",")):
            folder = Path(scratch) / f"random-{width}"
            random_topk_sae(folder, width)
            neighbors = args.no_neighbors_from is None or width < args.no_neighbors_from
            command = [sys.executable, "-m", "precompute", "build", "--sae", f"random-{width}={folder}", "--rows",
                       args.rows, "--absorption-words", str(args.words), "--ablation-candidates", "2", "--fresh",
                       "--db", str(Path(scratch) / f"{width}.duckdb"), *([] if neighbors else ["--neighbors", "0"])]
            peak, seconds, code = peak_rss_bytes(command)
            dense = VOCABULARY_WORDS * width * 4
            print(f"  {width:>9,}  {peak / 1e9:6.2f} GB  {seconds:7.0f}  {code:>4}  {'yes' if neighbors else 'no':>10}  "
                  f"{dense / 1e9:14.2f} GB", flush=True)


if __name__ == "__main__":
    main()
