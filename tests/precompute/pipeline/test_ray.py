"""Building with Ray (precompute/pipeline/distributed.py): a local Ray runtime builds the sweep's SAEs (two hooks, four SAEs)
one task per hook, and the database equals the single-process build's, table by table; a task that fails its first
attempt is retried with the same result; a rerun skips what is registered. Ray is an optional extra: these tests
skip without it (scripts/setup.sh all installs it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from precompute.loading.sae import SAESpec
from precompute.pipeline.dashboards import DashboardConfig
from precompute.pipeline.job import JobConfig, run_job
from tests import helpers

ray = pytest.importorskip("ray")

# Columns that record when or how fast, not what: they differ between any two builds.
VOLATILE = {"created_at", "seconds", "value"}  # meta.value holds the build time among its keys


def tiny_model_and_tokenizer():
    return helpers.tiny_model(), helpers.FakeTokenizer()


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory) -> tuple[list[SAESpec], JobConfig]:
    root = tmp_path_factory.mktemp("raysweep")
    corpus = root / "corpus.parquet"
    helpers.random_corpus(corpus, 64)
    specs = [SAESpec(key=s.key, path=helpers.planted_sae_folder(root, s.d_sae, s.seed, name=s.key, hook=s.hook,
                                                                planted_latent=s.planted_latent, aligned_decoder=True,
                                                                training_architecture=s.training_architecture))
             for s in helpers.SWEEP]
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, 64), db_path=root / "single.duckdb",
                       dashboard=DashboardConfig(batch_size=16, n_top=5, context_left=2, context_right=1),
                       absorption=None)
    model, tokenizer = tiny_model_and_tokenizer()
    run_job(specs, config, model=model, tokenizer=tokenizer, log=lambda *_: None)
    return specs, config


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[3])}})
    yield
    ray.shutdown()


def table_rows(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows without the volatile columns, sorted (order-insensitive comparison)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                                    ).fetchall():
            if table == "meta":
                continue
            columns = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                                 "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
                       if c not in VOLATILE]
            # an SAE's number depends on the order it was written in: compared by its key
            values = [f"(SELECT sae_key FROM sae_numbers n WHERE n.sae_num = t.{c})"
                      if c.endswith("sae_num") and table != "sae_numbers" else c for c in columns
                      if not (table == "sae_numbers" and c == "sae_num")]
            rows = con.execute(f"SELECT {', '.join(values)} FROM {table} t").fetchall()  # names from the catalog
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def test_a_ray_build_equals_the_single_process_build(sweep_inputs, local_ray, tmp_path):
    from precompute.pipeline.distributed import run_with_ray

    specs, config = sweep_inputs
    target = tmp_path / "ray.duckdb"
    summary = run_with_ray(specs, replace(config, db_path=target), model_factory=tiny_model_and_tokenizer,
                           log=lambda *_: None)
    assert summary.built == sorted(s.key for s in specs) and not summary.skipped
    single, fanned = table_rows(config.db_path), table_rows(target)
    assert set(single) == set(fanned)
    for table in single:
        assert fanned[table] == single[table], f"{table} differs"
    assert not (tmp_path / "ray.duckdb.shards").exists()  # registered shards are removed
    again = run_with_ray(specs, replace(config, db_path=target), model_factory=tiny_model_and_tokenizer,
                         log=lambda *_: None)
    assert again.built == [] and again.skipped == sorted(s.key for s in specs)


def test_a_task_that_fails_once_is_retried_with_the_same_result(sweep_inputs, local_ray, tmp_path, monkeypatch):
    from precompute.pipeline import distributed

    specs, config = sweep_inputs
    markers = tmp_path / "failed"
    # Workers read the switch from their environment: a fresh runtime_env per task carries it.
    task_env = {"env_vars": {distributed.FAIL_ONCE_ENV: str(markers),
                             "PYTHONPATH": str(Path(__file__).resolve().parents[3])}}
    monkeypatch.setattr(distributed, "TASK_RUNTIME_ENV", task_env, raising=False)
    target = tmp_path / "retried.duckdb"
    summary = distributed.run_with_ray(specs, replace(config, db_path=target), model_factory=tiny_model_and_tokenizer,
                                       log=lambda *_: None)
    assert sorted(p.name for p in markers.iterdir()) == sorted(
        f"{distributed.shard_path(target, hook).stem}.failed" for hook in {s.hook for s in helpers.SWEEP})
    assert summary.built == sorted(s.key for s in specs)
    assert table_rows(target) == table_rows(config.db_path)


def test_a_driver_that_dies_after_registering_one_hook_resumes_without_redoing_it(sweep_inputs, local_ray, tmp_path,
                                                                                 monkeypatch):
    from precompute.pipeline import distributed

    specs, config = sweep_inputs
    target = tmp_path / "resumed.duckdb"
    register = distributed.register_shard
    registered: list[list[str]] = []

    def die_after_the_first(target_path, shard, log=print):
        if registered:
            raise KeyboardInterrupt("driver killed")  # as a Ctrl-C or a kill between two registrations
        registered.append(register(target_path, shard, log=log))
        return registered[-1]

    monkeypatch.setattr(distributed, "register_shard", die_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        distributed.run_with_ray(specs, replace(config, db_path=target), model_factory=tiny_model_and_tokenizer,
                                 log=lambda *_: None)
    first = sorted(registered[0])
    assert sorted(distributed.registered_keys(target)) == first  # the database holds exactly the registered hook
    monkeypatch.setattr(distributed, "register_shard", register)
    resumed = distributed.run_with_ray(specs, replace(config, db_path=target), model_factory=tiny_model_and_tokenizer,
                                       log=lambda *_: None)
    assert resumed.skipped == first  # not recomputed
    assert sorted(resumed.built) == sorted(set(s.key for s in specs) - set(first))
    assert table_rows(target) == table_rows(config.db_path)
