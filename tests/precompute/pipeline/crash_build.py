"""A dashboards-only build of the tiny SAEs in ROOT/saes (two hooks) into ROOT/db/explorer.duckdb, run as a
subprocess by test_crash_safety.py so that it can be killed at a named point (PRECOMPUTE_CRASH_AT)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from precompute.loading.sae import SAESpec  # noqa: E402
from precompute.pipeline.dashboards import DashboardConfig  # noqa: E402
from precompute.pipeline.job import JobConfig, run_job  # noqa: E402
from tests.helpers import FakeTokenizer, tiny_model  # noqa: E402


def main(root: Path) -> None:
    specs = [SAESpec(key=folder.name, path=folder) for folder in sorted((root / "saes").iterdir())]
    config = JobConfig(model_name="tiny", corpus_path=root / "corpus.parquet", corpus_rows=(0, 32),
                       db_path=root / "db" / "explorer.duckdb", absorption=None,
                       dashboard=DashboardConfig(batch_size=8, n_top=5, context_left=2, context_right=1))
    run_job(specs, config, model=tiny_model(), tokenizer=FakeTokenizer(), log=lambda message: print(message, flush=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
