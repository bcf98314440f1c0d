"""`python -m precompute ...`: corpus preparation, SAE training, dashboards -> DuckDB, SAE cards."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contract.schema import N_NEIGHBORS
from contract.vocabulary import SPLIT_RULE_NAMES
from precompute.absorption.tasks import TASKS
from precompute.loading.preflight import PreflightError
from precompute.storage.lock import BuildInProgressError, TargetNotWritableError, writer_lock
from precompute.storage.target import DatabaseFileError
from precompute.storage.writer import (
    DiskFullError,
    RefusedInput,
    SchemaMismatchError,
    StaleWorkError,
    UnrequestedSaesError,
)

# Errors that mean "this input cannot be used" or "not now": one line on stderr and exit status 2, never a traceback.
USER_ERRORS = (FileNotFoundError, BuildInProgressError, TargetNotWritableError, SchemaMismatchError, PreflightError,
               DatabaseFileError, DiskFullError, StaleWorkError, UnrequestedSaesError, RefusedInput)

DEFAULT_CORPUS = Path("data/corpus/smollm2-debian-128.parquet")
DEFAULT_SAE_ROOT = Path("assets/saes")
DEFAULT_DB = Path("assets/demo.duckdb")
TASK_NAMES = tuple(TASKS)


def add_corpus_parser(sub) -> None:
    p = sub.add_parser("corpus", help="tokenize the offline text corpus into fixed-length rows (Parquet)")
    p.add_argument("--source", action="append", default=None,
                   help="'debian' (default: Debian prose packages), a local .txt/.txt.gz/.parquet file, "
                        "or a hub dataset name; repeat to combine")
    p.add_argument("--model", default="smollm2-135m-embedded", help="model whose tokenizer is used")
    p.add_argument("--context-size", type=positive_int, default=128, help="tokens per row")
    p.add_argument("--max-tokens", type=int, default=None, help="stop after this many tokens")
    p.add_argument("--seed", type=int, default=0, help="row shuffle seed")
    p.add_argument("--output", type=Path, default=DEFAULT_CORPUS, help="Parquet file to write")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train an SAE from a recipe with sae-lens's runner (resumable)")
    p.add_argument("recipe", type=Path, help="recipe JSON file, e.g. recipes/saes/smollm2-l6-topk-4k-k32.json")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="tokenized corpus (from `corpus`)")
    p.add_argument("--output-root", type=Path, default=DEFAULT_SAE_ROOT, help="folder receiving <name>/")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--training-tokens", type=int, default=None, help="override the recipe's token budget")


def add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train every SAE of a sweep from one shared activation cache (resumable)")
    p.add_argument("sweep", type=Path, help="sweep file, e.g. recipes/sweeps/smollm2-embedded.json")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="tokenized corpus (from `corpus`)")
    p.add_argument("--output-root", type=Path, default=DEFAULT_SAE_ROOT, help="folder receiving <name>/")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--only", action="append", default=None, metavar="NAME", help="train only this recipe (repeatable)")
    p.add_argument("--force", action="store_true", help="retrain SAEs that are already finished")
    p.add_argument("--training-tokens", type=int, default=None, help="override every recipe's token budget")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit status 2) instead of the usage block and a line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def int_at_least(minimum: int, what: str):
    """argparse type: a whole number of at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: {what}")
        return value

    parse.__name__ = f"at_least_{minimum}"
    return parse


positive_int = int_at_least(1, "at least 1")


def add_build_parser(sub) -> None:
    p = sub.add_parser("build", help="precompute latent dashboards for SAEs into the explorer's DuckDB file")
    p.add_argument("--sae", action="append", default=[], metavar="SPEC",
                   help="a local sae-lens folder (assets/saes/NAME), or RELEASE:SAE_ID for SAE.from_pretrained "
                        "(e.g. gpt2-small-res-jb:blocks.8.hook_resid_pre); prefix KEY= to name it; repeatable")
    p.add_argument("--sweep", type=Path, default=None,
                   help="add every finished SAE of this sweep file (from --sae-root), e.g. recipes/sweeps/smollm2-embedded.json")
    p.add_argument("--hook", action="append", default=None, metavar="HOOK",
                   help="with --sweep: only its SAEs at this hook (repeatable); one build per hook keeps each commit small")
    p.add_argument("--sae-root", type=Path, default=DEFAULT_SAE_ROOT, help="with --sweep: where its SAEs are")
    p.add_argument("--model", default="smollm2-135m-embedded",
                   help="'smollm2-135m-embedded' (shipped), 'toy-hierarchy' (the shipped toy run: assets/toy) or a "
                        "TransformerLens model name (needs hub access)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="tokenized corpus Parquet (from `corpus`)")
    p.add_argument("--rows", default="100000:102048", metavar="START:STOP",
                   help="corpus rows used for dashboards; keep them disjoint from the SAE's training rows")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="DuckDB file to write (atomically)")
    p.add_argument("--fresh", action="store_true", help="start a new database instead of adding to the existing one")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="fan out over Ray, one task per hook (num_gpus=1 on cuda): no ADDRESS = a local Ray runtime, "
                        "'auto' = the cluster this runs in; needs `pip install ray`")
    p.add_argument("--ray-cpus", type=positive_int, default=None, metavar="N",
                   help="with a local --ray runtime: its CPUs, 1 or more (default: all)")
    p.add_argument("--force", action="store_true", help="recompute SAEs already in the database")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="model dtype")
    p.add_argument("--batch-size", type=positive_int, default=32, help="corpus rows per model call")
    p.add_argument("--n-top", type=positive_int, default=20, help="top-activating contexts per latent")
    p.add_argument("--quantile-bins", type=positive_int, default=5, help="activation bins for quantile samples")
    p.add_argument("--per-bin", type=int_at_least(0, "0 or more"), default=2, help="contexts sampled per quantile bin")
    p.add_argument("--neighbors", type=int, default=N_NEIGHBORS, choices=range(N_NEIGHBORS + 1), metavar=f"0..{N_NEIGHBORS}",
                   help="nearest latents by decoder cosine per latent (0: none; O(d_sae^2) compute, O(block) memory)")
    p.add_argument("--no-absorption", action="store_true", help="dashboards only, skip the absorption stage")
    p.add_argument("--task", action="append", default=None, choices=[*TASK_NAMES, "all"], metavar="TASK",
                   help=f"absorption task (repeatable; default first_letter; all = every task that labels the model's "
                        f"vocabulary: toy_hierarchy only the toy's): {', '.join(TASK_NAMES)}")
    p.add_argument("--absorption-words", type=positive_int, default=None,
                   help="seeded subset of the alphabetic vocabulary (default: all of it, as SAEBench)")
    p.add_argument("--fresh-prefixes", action="store_true",
                   help="a fresh in-context prefix per word (the references' way; several times slower)")
    p.add_argument("--ablation-candidates", type=positive_int, default=200,
                   help="paper metric: at most this many candidate words per letter (sampled, rates rescaled)")
    p.add_argument("--no-ablation-metric", action="store_true", help="skip the paper's integrated-gradients metric")
    p.add_argument("--split-mode", choices=["crossfit", "holdout"], default="crossfit",
                   help="crossfit (default): every word measured against a probe fitted on the other folds; "
                        "holdout: SAEBench's 80/20 split (what its reference numbers use)")
    p.add_argument("--split-rule", choices=list(SPLIT_RULE_NAMES), default="guarded",
                   help="how candidate split latents are ranked: guarded (default), by the L1 probe's weight unless its "
                        "split latents classify worse than the class's best single latent alone, then by own F1; l1, by the L1 "
                        "probe's weight (SAEBench's rule); f1, by each latent's own F1 on the training words. SAEBench's "
                        "rule (or for it, guarded) is measured beside it (docs/split_rule.md)")
    p.add_argument("--default-sae", default=None, metavar="KEY",
                   help="the SAE the pages open when the URL names none (default: the widest SAE at the hook with the "
                        "most SAEs; `python -m precompute default-sae` changes it later)")
    p.add_argument("--folds", type=int_at_least(2, "cross-fitting needs at least 2 folds"), default=5,
                   help="crossfit folds (at least 2)")
    add_discard_work(p)


def add_discard_work(p) -> None:
    p.add_argument("--discard-work", action="store_true",
                   help="delete an interrupted run's work file that another command or other inputs left next to --db "
                        "(by default the command stops and says what the work file holds)")


def add_card_parser(sub) -> None:
    p = sub.add_parser("card", help="measure a trained SAE (explained variance, L0, dead latents, CE loss "
                                    "recovered) and write card.json + README.md into its folder")
    p.add_argument("folder", type=Path, help="sae-lens SAE folder, e.g. assets/saes/smollm2-l6-topk-4k-k32")
    p.add_argument("--recipe", type=Path, default=None, help="the recipe it was trained from (for the card)")
    p.add_argument("--model", default="smollm2-135m-embedded", help="model the SAE reads")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="tokenized corpus Parquet")
    p.add_argument("--rows", default="100000:101024", metavar="START:STOP", help="held-out rows for EV/L0/dead")
    p.add_argument("--ce-rows", type=positive_int, default=64, help="rows (from START) for the CE-loss comparison")


def run_card(args) -> int:
    import json

    from precompute.loading.preflight import check_corpus

    start, stop = parse_rows(args.rows)
    check_corpus(args.corpus, (start, stop), args.model)
    from precompute.loading.corpus import load_corpus_rows
    from precompute.loading.model import load_model
    from precompute.train.card import measure_and_write_card

    rows = load_corpus_rows(args.corpus)[start:stop]
    card = measure_and_write_card(args.folder, load_model(args.model), rows, f"{start}:{stop}", args.ce_rows,
                                  args.recipe, args.model)
    print(json.dumps(card.__dict__, indent=2))
    return 0


def parse_rows(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError:
        raise PreflightError(f"--rows must look like START:STOP, got {text!r}") from None
    if not 0 <= start < stop:
        raise PreflightError(f"--rows needs 0 <= START < STOP, got {text!r}")
    return start, stop


def build_specs(args) -> list:
    """The SAEs to build, from --sae and --sweep, parsed without loading anything."""
    from precompute.loading.spec import SAESpec

    try:
        specs = [SAESpec.parse(text) for text in args.sae]
        if args.sweep:
            specs += sweep_specs(args.sweep, args.sae_root, set(args.hook) if args.hook else None)
    except ValueError as error:
        raise PreflightError(str(error)) from None
    if not specs:
        raise PreflightError("no SAEs to build: give --sae, or --sweep with finished SAEs")
    return specs


def check_build_inputs(args, specs: list) -> None:
    """Everything a build can be refused for, before its heavy imports and the model: the target database, each
    SAE's config and weights header (and width against the model's), the corpus rows, and the free disk space."""
    from precompute.loading.preflight import check_corpus, check_free_space, check_writable, needed_bytes, sae_shapes
    from precompute.storage.target import check_build_target

    check_build_target(args.db, fresh=args.fresh)
    check_writable(args.db)
    check_default_sae(args, specs)
    shapes = sae_shapes(specs, args.model)
    check_corpus(args.corpus, parse_rows(args.rows), args.model)
    check_free_space(args.db, needed_bytes(args.db, shapes))


def check_default_sae(args, specs: list) -> None:
    """--default-sae names an SAE of this build or of the database it adds to (checked before the work, not at its
    end)."""
    if args.default_sae is None:
        return
    from precompute.storage.writer import sae_keys_in

    known = {spec.key for spec in specs} | (set() if args.fresh else sae_keys_in(args.db))
    if args.default_sae not in known:
        raise PreflightError(f"--default-sae {args.default_sae!r} is neither an SAE of this build nor of {args.db} "
                             f"({', '.join(sorted(known))})")


def run_build(args) -> int:
    specs = build_specs(args)
    check_build_inputs(args, specs)  # reads only: a refusal leaves no file or folder behind
    with writer_lock(args.db):  # before any file is touched: a second writer stops here, deleting nothing
        return run_checked_build(args, specs)


def run_checked_build(args, specs: list) -> int:
    from precompute.loading.model import default_device
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, ModelMismatch, run_job

    config = JobConfig(
        model_name=args.model,
        corpus_path=args.corpus,
        corpus_rows=parse_rows(args.rows),
        db_path=args.db,
        device=args.device or default_device(),
        dtype=args.dtype,
        append=not args.fresh,
        force=args.force,
        dashboard=DashboardConfig(batch_size=args.batch_size, n_top=args.n_top,
                                  n_quantile_bins=args.quantile_bins, n_per_quantile=args.per_bin,
                                  n_neighbors=args.neighbors),
        absorption=None if args.no_absorption else absorption_config(args),
        tasks=chosen_tasks(args.task),
        discard_work=args.discard_work,
        default_sae=args.default_sae,
    )
    try:
        if args.ray:
            from precompute.pipeline.distributed import RayUnavailable, run_with_ray

            try:
                run_with_ray(specs, config, address=None if args.ray == "local" else args.ray, num_cpus=args.ray_cpus)
            except RayUnavailable as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
        else:
            run_job(specs, config)
    except ModelMismatch as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(f"wrote {args.db} ({args.db.stat().st_size / 1e6:.2f} MB)")
    return 0


def sweep_specs(sweep_path: Path, sae_root: Path, hooks: set[str] | None) -> list:
    """The finished SAEs of a sweep (those with a card), optionally only at some hooks."""
    if not Path(sweep_path).is_file():
        raise PreflightError(f"--sweep {sweep_path}: no such file")
    from precompute.loading.spec import SAESpec
    from precompute.train.sweep import Sweep, is_finished

    sweep = Sweep.from_file(sweep_path)
    recipes = [r for _, r in sweep.recipes() if hooks is None or r.hook_name in hooks]
    missing = [r.name for r in recipes if not is_finished(r, sae_root)]
    if missing:
        print(f"not finished yet, left out: {', '.join(missing)}", file=sys.stderr)
    return [SAESpec(key=r.name, path=sae_root / r.name) for r in recipes if is_finished(r, sae_root)]


def chosen_tasks(names: list[str] | None) -> tuple[str, ...]:
    """--task values in registry order (first_letter first: the running-text statistics read its latents)."""
    wanted = set(names or ["first_letter"])
    return tuple(TASK_NAMES) if "all" in wanted else tuple(name for name in TASK_NAMES if name in wanted)


def absorption_config(args):
    from precompute.absorption.ablation import AblationMetricConfig
    from precompute.absorption.config import AbsorptionConfig
    from precompute.absorption.ksparse import KSparseConfig

    return AbsorptionConfig(max_words=args.absorption_words, share_prefix=not args.fresh_prefixes,
                            ablation=AblationMetricConfig(max_candidates=args.ablation_candidates),
                            k_sparse=KSparseConfig(rule=args.split_rule),
                            run_ablation_metric=not args.no_ablation_metric, split_mode=args.split_mode,
                            n_folds=args.folds)


def run_corpus(args) -> int:
    from precompute.loading.corpus import CorpusConfig, build_corpus
    from precompute.loading.model import load_tokenizer

    config = CorpusConfig(sources=tuple(args.source or ["debian"]), context_size=args.context_size,
                          seed=args.seed, max_tokens=args.max_tokens)
    path = build_corpus(load_tokenizer(args.model), config, args.output)
    print(f"wrote {path}")
    return 0


def run_train(args) -> int:
    import dataclasses

    from precompute.loading.model import default_device
    from precompute.train.training import TrainingRecipe, train_sae

    recipe = TrainingRecipe.from_file(args.recipe)
    if args.training_tokens:
        recipe = dataclasses.replace(recipe, training_tokens=args.training_tokens)
    out = train_sae(recipe, args.corpus, args.output_root, device=args.device or default_device())
    print(f"wrote {out}")
    return 0


def run_sweep_command(args) -> int:
    from precompute.loading.model import default_device
    from precompute.train.sweep import Sweep, run_sweep

    sweep = Sweep.from_file(args.sweep)
    try:
        written = run_sweep(sweep, args.corpus, args.output_root, device=args.device or default_device(),
                            only=set(args.only) if args.only else None, force=args.force,
                            training_tokens=args.training_tokens)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for folder in written:
        print(f"wrote {folder}")
    return 0


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="one SAE's absorption results as SAEBench-style JSON + Parquet/CSV tables")
    p.add_argument("--sae", action="append", required=True, metavar="KEY", help="SAE key in the database (repeatable)")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="DuckDB file to read")
    p.add_argument("--out", type=Path, default=Path("exports"), help="output folder")
    p.add_argument("--saebench-json", action="store_true",
                   help="only SAEBench's result JSON (first letters), checked with SAEBench's own schema in its peer "
                        "venv when bench/peers/.venv-saebench exists (a `saebench` run writes its own with --out)")


def run_export(args) -> int:
    from precompute.storage.target import check_current_database

    check_current_database(args.db)
    from precompute.storage.export import ExportError, export_sae, validate_with_saebench

    try:
        for key in args.sae:
            for path in export_sae(args.db, key, args.out, saebench_only=args.saebench_json):
                print(f"wrote {path}")
                if args.saebench_json:
                    try:
                        problem = validate_with_saebench(path)
                    except FileNotFoundError as missing:
                        print(f"  not checked against SAEBench's schema: {missing}")
                        continue
                    if problem is not None:
                        print(f"error: {path} does not fit SAEBench's AbsorptionEvalOutput: {problem}", file=sys.stderr)
                        return 2
                    print("  valid under SAEBench's AbsorptionEvalOutput")
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def add_migrate_parser(sub) -> None:
    p = sub.add_parser("migrate", help="bring a database written by an older schema version to this one (no model "
                                       "pass; running-text tables stay empty until `build --force`)")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="DuckDB file to upgrade in place (crash-safe)")
    add_discard_work(p)


def add_toy_parser(sub) -> None:
    sub.add_parser("toy", help="rewrite the shipped toy run from its seed (precompute/toy/hierarchy.py): assets/toy "
                               "(tokenizer, weights, corpus) and its SAE under assets/saes")


def run_toy(args) -> int:
    from precompute.toy.hierarchy import write_toy_assets

    write_toy_assets()
    return 0


def run_migrate(args) -> int:
    from precompute.loading.preflight import check_writable
    from precompute.storage.target import check_migrate_source

    check_migrate_source(args.db)
    check_writable(args.db)
    with writer_lock(args.db):
        from precompute.pipeline.migrate import migrate

        migrate(args.db, discard_work=args.discard_work)
    return 0


def add_default_sae_parser(sub) -> None:
    p = sub.add_parser("default-sae", help="set the SAE the pages open when the URL names none (crash-safe)")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="DuckDB file to change")
    p.add_argument("--sae", required=True, metavar="KEY", help="an SAE key of the database")


def run_default_sae(args) -> int:
    from precompute.loading.preflight import check_writable
    from precompute.storage.target import check_current_database

    check_current_database(args.db)
    check_writable(args.db)
    with writer_lock(args.db):
        from precompute.pipeline.meta import set_default_sae

        set_default_sae(args.db, args.sae)
    return 0


def add_merge_parser(sub) -> None:
    p = sub.add_parser("merge", help="copy the SAEs of other databases (e.g. one build per hook, run apart) into "
                                     "one (crash-safe)")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help="DuckDB file to merge into")
    p.add_argument("--from", dest="sources", type=Path, action="append", required=True, metavar="DB",
                   help="database to copy SAEs from (repeatable)")
    add_discard_work(p)


def run_merge(args) -> int:
    from precompute.loading.preflight import check_writable
    from precompute.storage.target import check_build_target, check_current_database

    check_build_target(args.db, fresh=False)
    check_writable(args.db)
    for source in args.sources:
        check_current_database(source, "--from")
    with writer_lock(args.db):
        from precompute.pipeline.merge import merge

        for source in args.sources:
            merge(args.db, source, discard_work=args.discard_work)
    return 0


def add_saebench_parser(sub) -> None:
    from precompute.absorption.saebench_protocol import add_arguments

    p = sub.add_parser("saebench", help="SAEBench 0.6.0's first-letter absorption eval, step by step, with our "
                                        "activations; writes its result JSON (runs in bench/peers/.venv-saebench)")
    add_arguments(p)


def run_saebench(args) -> int:
    from precompute.absorption.saebench_protocol import command

    return command(args)


COMMANDS = {"corpus": run_corpus, "train": run_train, "sweep": run_sweep_command, "build": run_build, "card": run_card,
            "export": run_export, "migrate": run_migrate, "merge": run_merge, "toy": run_toy,
            "default-sae": run_default_sae, "saebench": run_saebench}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m precompute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_corpus_parser(sub)
    add_train_parser(sub)
    add_sweep_parser(sub)
    add_build_parser(sub)
    add_card_parser(sub)
    add_export_parser(sub)
    add_migrate_parser(sub)
    add_merge_parser(sub)
    add_default_sae_parser(sub)
    add_toy_parser(sub)
    add_saebench_parser(sub)
    return parser


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as error:  # a mistyped path, a bad file, a second writer, a full disk: no traceback
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
