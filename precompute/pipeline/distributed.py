"""A build fanned out over Ray: one task per hook group (the model pass, probe and activations are shared by the
SAEs at a hook), each writing its own shard database next to the target; the driver registers each finished shard
into the target as it arrives (`precompute.pipeline.merge`: crash-safe, the target changes only by an atomic rename), so the
database is usable while the run goes on. A killed task is retried (`max_retries`); a rerun of the same command
skips hook groups whose SAEs are all registered, and a shard left by a killed run resumes (a build skips the SAEs
its file already holds). Ray is an optional extra (`pip install ray`): without it `--ray` is a clear message.

    python -m precompute build --sweep recipes/sweeps/smollm2-embedded.json --ray            # a local Ray runtime
    python -m precompute build --sae ... --ray auto                                           # the cluster this runs in
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from precompute.loading.sae import SAESpec
from precompute.pipeline.job import JobConfig

MAX_RETRIES = 2
FAIL_ONCE_ENV = "ABSORPTION_EXPLORER_FAIL_ONCE_DIR"  # tests: a task fails its first attempt (marker file per hook)
TASK_RUNTIME_ENV: dict | None = None  # tests: a runtime_env for every task (e.g. the fault-injection switch)


class RayUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class HookGroup:
    hook: str
    specs: tuple[SAESpec, ...]


@dataclass(frozen=True)
class ShardResult:
    hook: str
    shard: Path
    seconds: float
    attempt_pid: int


@dataclass(frozen=True)
class RaySummary:
    built: list[str]  # SAE keys registered by this run
    skipped: list[str]  # already registered before it
    wall_seconds: float
    task_seconds: float  # summed over tasks (CPU- or GPU-seconds of work)


def spec_hook(spec: SAESpec) -> str:
    """The hook an SAE reads, from its config alone (no weights)."""
    if spec.path is not None:
        cfg = json.loads((Path(spec.path) / "cfg.json").read_text())
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    else:
        from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface

        cfg = load_sae_config_from_huggingface(spec.release, spec.sae_id)  # the config file only, not the weights
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    if not hook:
        raise ValueError(f"SAE {spec.key}: its config names no hook")
    return hook


def hook_groups(specs: list[SAESpec]) -> list[HookGroup]:
    groups: dict[str, list[SAESpec]] = {}
    for spec in specs:
        groups.setdefault(spec_hook(spec), []).append(spec)
    return [HookGroup(hook, tuple(group)) for hook, group in groups.items()]


def shard_path(db_path: Path, hook: str) -> Path:
    return db_path.parent / f"{db_path.name}.shards" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', hook)}.duckdb"


def missing_results(db_path: Path, specs: tuple[SAESpec, ...], tasks: tuple[str, ...]) -> set[tuple[str, str]]:
    """(SAE key, task) pairs of `specs` whose absorption results `db_path` lacks ('' as task: the SAE itself)."""
    keys = registered_keys(db_path)
    measured: set[tuple[str, str]] = set()
    if db_path.exists() and tasks:
        with duckdb.connect(str(db_path), read_only=True) as con:
            measured = {tuple(row) for row in con.execute("SELECT sae_key, task FROM sae_absorption").fetchall()}
    return ({(s.key, "") for s in specs if s.key not in keys}
            | {(s.key, task) for s in specs for task in tasks if (s.key, task) not in measured})


def registered_keys(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT sae_key FROM saes").fetchall()}
    finally:
        con.close()


def build_shard(group: HookGroup, config: JobConfig, shard: Path,
                model_factory: Callable[[], tuple[object, object]] | None = None) -> ShardResult:
    """The task: the hook group's SAEs into their own shard (resumable: the SAEs it already holds are kept)."""
    from precompute.pipeline.job import run_job

    fail_once = os.environ.get(FAIL_ONCE_ENV)
    if fail_once:  # fault injection: the first attempt for each hook dies
        marker = Path(fail_once) / f"{shard.stem}.failed"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError(f"injected failure for hook {group.hook}")
    start = time.perf_counter()
    shard.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = model_factory() if model_factory is not None else (None, None)
    run_job(list(group.specs), replace(config, db_path=shard, append=True), model=model, tokenizer=tokenizer,
            log=lambda *args: print(f"[{group.hook}]", *args, flush=True))
    return ShardResult(group.hook, shard, time.perf_counter() - start, os.getpid())


def register_shard(target: Path, shard: Path, log=print) -> list[str]:
    """The shard's SAEs into the target, atomically; the first shard becomes the target."""
    if not target.exists():
        from precompute.storage.writer import publish_copy

        keys = sorted(registered_keys(shard))
        publish_copy(shard, target)
        return keys
    from precompute.pipeline.merge import merge

    return merge(target, shard, log=log)


def run_with_ray(specs: list[SAESpec], config: JobConfig, address: str | None = None, num_cpus: int | None = None,
                 model_factory: Callable[[], tuple[object, object]] | None = None, log=print) -> RaySummary:
    """Build `specs` into config.db_path with one Ray task per hook group. address: None = a local runtime
    (`num_cpus` of it), 'auto' = the running cluster, or a Ray address. The driver holds the target's writer lock
    throughout: the workers write only their shards, and the driver registers each into the target."""
    from precompute.storage.lock import writer_lock

    with writer_lock(config.db_path):
        return run_with_ray_locked(specs, config, address, num_cpus, model_factory, log)


def run_with_ray_locked(specs: list[SAESpec], config: JobConfig, address: str | None, num_cpus: int | None,
                        model_factory: Callable[[], tuple[object, object]] | None, log) -> RaySummary:
    try:
        import ray
    except ImportError as error:
        raise RayUnavailable("--ray needs Ray, an optional extra: pip install ray "
                             "(or the requirements file's `ray` line)") from error
    from tqdm import tqdm

    start = time.perf_counter()
    groups = hook_groups(specs)
    from precompute.absorption.tasks import tasks_for_model

    tasks = tasks_for_model(config.tasks, config.model_name) if config.absorption is not None else ()
    # a group is done when its SAEs and each of their tasks' results are registered (a build may add a task: its
    # worker then rebuilds the group in an empty shard, and registering copies only the results the target lacks)
    fresh = not config.append or config.force
    todo = [g for g in groups if fresh or missing_results(config.db_path, g.specs, tasks)]
    skipped = sorted({s.key for g in groups if g not in todo for s in g.specs})
    if not config.append and config.db_path.exists():
        from precompute.storage.writer import remove_target

        remove_target(config.db_path)  # --fresh: start over (shards are per run directory, removed below)
    if not todo:
        log(f"every SAE is already in {config.db_path}: nothing to build")
        return RaySummary([], skipped, time.perf_counter() - start, 0.0)
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[2])  # the repository: workers import precompute from it
        try:
            ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                     log_to_driver=True, runtime_env={"env_vars": {"PYTHONPATH": root, **_passed_env()}})
        except (ConnectionError, ValueError, RuntimeError) as error:  # no cluster at that address, bad arguments
            raise RayUnavailable(f"could not start or join Ray at {address or 'a local runtime'}: {error}") from error
    gpus = 1 if config.device.startswith("cuda") else 0
    options = dict(num_gpus=gpus, num_cpus=0 if gpus else 1, max_retries=MAX_RETRIES, retry_exceptions=True)
    if TASK_RUNTIME_ENV is not None:
        options["runtime_env"] = TASK_RUNTIME_ENV
    task = ray.remote(build_shard).options(**options)
    pending = {task.remote(g, config, shard_path(config.db_path, g.hook), model_factory): g for g in todo}
    built: list[str] = []
    task_seconds = 0.0
    try:
        with tqdm(total=sum(len(g.specs) for g in todo), desc="SAEs", unit="SAE") as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(ready[0])
                try:
                    result: ShardResult = ray.get(ready[0])
                except Exception as error:  # noqa: BLE001 - Ray wraps the task's own error; name the hook and SAEs
                    raise RuntimeError(f"hook {group.hook} (SAEs {', '.join(s.key for s in group.specs)}) failed "
                                       f"after {MAX_RETRIES} retries: {error}") from error
                built += register_shard(config.db_path, result.shard, log=log)
                task_seconds += result.seconds
                bar.update(len(group.specs))
                bar.set_postfix_str(f"{group.hook} registered")
    except BaseException:
        # The driver is going away (an error, Ctrl-C): stop its tasks, so a rerun does not race them for a shard.
        # What was registered stays; unfinished shards resume on the rerun.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    shutil.rmtree(config.db_path.parent / f"{config.db_path.name}.shards", ignore_errors=True)
    summary = RaySummary(sorted(built), skipped, time.perf_counter() - start, task_seconds)
    log(f"ray: {len(summary.built)} SAEs built in {len(todo)} tasks, {len(skipped)} already there; wall "
        f"{summary.wall_seconds:.0f} s, task time {summary.task_seconds:.0f} s"
        + (f" ({summary.task_seconds / 3600:.2f} GPU-hours)" if gpus else ""))
    return summary


def _passed_env() -> dict[str, str]:
    """Environment the workers need from the driver (offline hub, fault injection in tests)."""
    names = ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", FAIL_ONCE_ENV, "EXPLORER_CODE_VERSION")
    return {name: os.environ[name] for name in names if name in os.environ}
