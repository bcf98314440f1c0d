"""bench/peers/run_saebench_absorption.py (SAEBench 0.6.0's absorption eval, driven step by step) with one change:
the absorption step's ICL vocabulary `get_alpha_tokens(tokenizer)` sorted. SAEBench's own order is that of
`tokenizer.vocab`, a dict built from a Rust hash map in a new random order at every call, so without this the
absorption step's prompts differ between two runs at the same seed and no second run can reproduce the first.
`python -m precompute saebench` (precompute/absorption/saebench_protocol.py) sorts the same list the same way.
Runs INSIDE bench/peers/.venv-saebench; takes the driver's arguments.

    bench/peers/.venv-saebench/bin/python bench/peers/run_saebench_sorted_vocab.py --sae ... --words words.json
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sae_bench.evals.absorption import feature_absorption  # noqa: E402

original = feature_absorption.get_alpha_tokens
feature_absorption.get_alpha_tokens = lambda tokenizer, *a, **kw: sorted(original(tokenizer, *a, **kw))
sys.argv[0] = str(HERE / "run_saebench_absorption.py")
runpy.run_path(sys.argv[0], run_name="__main__")
