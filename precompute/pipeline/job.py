"""The dashboard precompute job: for each SAE, one pass over the corpus -> rows in DuckDB."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from contract.rows import SaeRow, arrow_table
from contract.schema import DEFAULT_SAE_META_KEY, N_NEIGHBORS
from precompute.absorption.config import AbsorptionConfig
from precompute.loading.corpus import load_corpus_rows
from precompute.loading.model import TOY_MODEL_NAME
from precompute.loading.sae import (
    SAESpec,
    hook_layer,
    load_sae,
    sae_architecture,
    sae_hook_name,
    spec_weight_bytes,
    specs_by_hook,
)
from precompute.pipeline import dashboards as dash
from precompute.pipeline import labels
from precompute.pipeline import token_stats as ts
from precompute.storage import writer as db
from precompute.util.faults import crash_point


@dataclass(frozen=True)
class JobConfig:
    model_name: str
    corpus_path: Path
    corpus_rows: tuple[int, int]  # [start, stop) rows of the corpus file used for dashboards
    db_path: Path
    device: str = "cpu"
    dtype: str = "float32"  # model dtype (bfloat16/float16 on a GPU for large models); SAEs run in float32
    append: bool = True  # keep SAEs already in the database
    force: bool = False  # recompute SAEs that are already there
    dashboard: dash.DashboardConfig = field(default_factory=dash.DashboardConfig)
    absorption: AbsorptionConfig | None = field(default_factory=AbsorptionConfig)  # None: dashboards only
    tasks: tuple[str, ...] = ("first_letter",)  # absorption tasks (precompute/absorption/tasks.py), each measured alike
    # The dashboards pass runs the model once, to the deepest hook, for every SAE at every hook, so those SAEs are in
    # memory together; past this many bytes of (float32) SAE weights they share several passes instead (more model
    # forwards, bounded memory). The absorption and matching stages hold one or two SAEs at a time anyway.
    max_pass_sae_bytes: int = 16 << 30
    discard_work: bool = False  # delete an interrupted run's work file of other inputs instead of refusing to start
    default_sae: str | None = None  # the SAE the pages open when the URL names none (None: the writer's rule)


def build_inputs(specs: list[SAESpec], config: JobConfig) -> dict:
    """What this build computes, as its work file records it: a rerun with the same inputs resumes the work file,
    one with others is refused (precompute/storage/writer.resumable_work). The device, --force and the file names
    of the run are left out: they change how, not what."""
    return {
        "command": "build", "fresh": not config.append, "model": config.model_name, "dtype": config.dtype,
        "saes": [spec.describe() for spec in specs],
        "corpus": str(config.corpus_path.resolve()), "rows": list(config.corpus_rows),
        "dashboard": asdict(config.dashboard),
        "absorption": None if config.absorption is None else asdict(config.absorption),
        "tasks": list(config.tasks),
    }


def vocab_table(model_name: str, tokenizer, d_vocab: int) -> pa.Table:
    ids = list(range(d_vocab))
    tokens = [tokenizer.decode([i]) for i in ids]
    return pa.table({"model_name": [model_name] * d_vocab, "token_id": ids, "token": tokens})


def training_architecture(sae) -> str:
    """How it was trained: sae-lens saves BatchTopK (and Matryoshka) SAEs as inference JumpReLU SAEs and
    keeps the training architecture in the metadata."""
    return getattr(sae.cfg.metadata, "training_architecture", None) or sae_architecture(sae)


def sae_row(spec: SAESpec, sae, model_name: str, hook_name: str, corpus: str, stats: dash.ReconstructionStats,
            n_dead: int, config: dash.DashboardConfig) -> SaeRow:
    return SaeRow(
        sae_key=spec.key,
        model_name=model_name,
        hook_name=hook_name,
        layer=hook_layer(hook_name),
        architecture=sae_architecture(sae),
        training_architecture=training_architecture(sae),
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        source=spec.source,
        path=str(spec.path) if spec.path else None,
        release=spec.release,
        sae_id=spec.sae_id,
        corpus=corpus,
        n_tokens=stats.n_tokens,
        explained_variance=stats.explained_variance,
        mse=stats.mse,
        l0=stats.l0,
        n_dead=n_dead,
        dead_fraction=n_dead / sae.cfg.d_sae,
        context_left=config.context_left,
        context_right=config.context_right,
        hist_bins=config.hist_bins,
        created_at=datetime.now(timezone.utc).replace(tzinfo=None),
    )


def latents_table(key: str, stats: dash.LatentStats, logits, neighbors) -> pa.Table:
    top_i, top_v, bot_i, bot_v = logits
    nb_i, nb_c = padded_neighbors(*neighbors)
    d_sae = len(stats.n_fired)
    return pa.table({
        "sae_key": [key] * d_sae,
        "latent": np.arange(d_sae, dtype=np.int32),
        "n_fired": stats.n_fired.astype(np.uint32),
        "density": stats.density,
        "max_act": rounded(stats.max_act),
        "mean_act": rounded(stats.mean_act),
        "hist_counts": fixed_size_lists(stats.hist_counts.astype(np.int32), pa.int32()),
        "top_logit_ids": fixed_size_lists(top_i.astype(np.int32), pa.int32()),
        "top_logit_values": fixed_size_lists(rounded(top_v, 2), pa.float32()),
        "bottom_logit_ids": fixed_size_lists(bot_i.astype(np.int32), pa.int32()),
        "bottom_logit_values": fixed_size_lists(rounded(bot_v, 2), pa.float32()),
        "neighbor_ids": fixed_size_lists(nb_i.astype(np.int32), pa.int32()),
        "neighbor_cosines": fixed_size_lists(rounded(nb_c), pa.float32()),
    })


def fixed_size_lists(rows: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
    """[n, width] -> n arrays of `width` (the schema's ARRAY columns); NaN becomes NULL."""
    values = pa.array(rows.reshape(-1), value_type, from_pandas=True)
    return pa.FixedSizeListArray.from_arrays(values, rows.shape[1])


def padded_neighbors(ids: np.ndarray, cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fewer neighbours than the array holds (an SAE with at most N_NEIGHBORS latents, or --neighbors below it):
    id -1, cosine NULL."""
    missing = N_NEIGHBORS - ids.shape[1]
    if missing <= 0:
        return ids, cosines
    return (np.pad(ids, ((0, 0), (0, missing)), constant_values=-1),
            np.pad(cosines.astype(np.float32), ((0, 0), (0, missing)), constant_values=np.nan))


CONTEXT_ACT_DECIMALS = 2  # contexts.act


def rounded(values: np.ndarray, decimals: int = 3) -> np.ndarray:
    """Display values rounded to decimals: exact short decimals compress several-fold in DuckDB (ALP)."""
    return np.round(values.astype(np.float64), decimals).astype(np.float32)


def contexts_table(key: str, refs: dash.ContextRefs, seq_len: int, first_row: int) -> pa.Table:
    order = np.lexsort((refs.rank, refs.kind, refs.latent))  # sorted rows bit-pack and RLE well
    return pa.table({
        "sae_key": [key] * len(order),
        "latent": refs.latent[order].astype(np.int32),
        "kind": refs.kind[order].astype(np.uint8),
        "rank": refs.rank[order].astype(np.uint16),
        "seq_id": (refs.token_index[order] // seq_len + first_row).astype(np.int32),
        "pos": (refs.token_index[order] % seq_len).astype(np.uint16),
        "act": refs.act[order].astype(np.float32),  # rounded once by the caller (window_acts reads the same values)
    })


def window_acts_table(key: str, windows: dash.WindowActivations) -> pa.Table:
    order = np.lexsort((windows.rel_pos, windows.context, windows.latent))  # sorted rows bit-pack well
    return pa.table({
        "sae_key": [key] * len(order),
        "latent": windows.latent[order].astype(np.int32),
        "context": windows.context[order].astype(np.uint16),
        "rel_pos": windows.rel_pos[order].astype(np.int16),
        "level": windows.level[order].astype(np.uint8),
    })


def sequences_table(model_name: str, rows: np.ndarray, seq_ids: np.ndarray, first_row: int) -> pa.Table:
    return pa.table({
        "model_name": [model_name] * len(seq_ids),
        "seq_id": seq_ids.astype(np.int32),
        "tokens": pa.array(list(rows[seq_ids - first_row].astype(np.int32)), type=pa.list_(pa.int32())),
    })


@dataclass
class SAETiming:
    key: str
    pass_seconds: float
    post_seconds: float
    n_tokens: int


@dataclass(frozen=True)
class LetterInputs:
    """What token_letters needs besides the codes: the model's alphabetic tokens and the SAE's letter latents."""

    alphabetic_ids: np.ndarray  # token ids
    alphabetic_letters: np.ndarray  # their lower-case first letters
    letters: list[ts.LetterLatents]  # the SAE's sae_letters rows; [] when it has no absorption results


def running_text_tables(key: str, codes: dash.SparseCodes, rows: np.ndarray, d_sae: int, cfg: dash.DashboardConfig,
                        letters: LetterInputs | None, vocab: Sequence[str] = ()) -> dict[str, pa.Table]:
    """token_occurrences, token_latents and latent_labels (token strings from `vocab`, by id) for every SAE;
    token_letters only for an SAE with absorption results."""
    counts = ts.token_counts(codes, rows, cfg.first_position, d_sae)
    index = None
    if letters is not None and letters.letters:
        index = ts.letter_index(len(counts.n_occurrences), d_sae, letters.alphabetic_ids, letters.alphabetic_letters,
                                letters.letters)
    tables = {"token_occurrences": ts.token_occurrences_table(key, counts),
              "token_latents": ts.token_latents_table(key, ts.top_token_latents(counts, cfg.n_token_latents, index)),
              "latent_labels": labels.latent_labels_table(key, labels.latent_top_tokens(counts), vocab)}
    if index is not None:
        tables["token_letters"] = ts.token_letters_table(key, ts.token_letters(codes, rows, counts, index))
    return tables


def sae_tables(spec: SAESpec, sae, result: dash.PassResult, model, config: JobConfig, rows: np.ndarray,
               letters: LetterInputs | None = None, vocab: Sequence[str] = ()) -> tuple[dict[str, pa.Table], np.ndarray]:
    """Everything the database holds for one SAE, from its codes over `rows` (the pass's corpus rows).
    Returns the tables and referenced rows."""
    cfg = config.dashboard
    hook_name = sae_hook_name(sae)
    codes = result.codes
    stats = dash.latent_stats(codes, sae.cfg.d_sae, cfg.hist_bins)
    refs = dash.concat_refs([
        dash.top_contexts(codes, cfg.n_top),
        dash.quantile_contexts(codes, stats.max_act, cfg.n_quantile_bins, cfg.n_per_quantile, cfg.seed),
    ])
    # the acts and maxima as stored: a context's own token whose level they give is left out of window_acts
    stored_refs = replace(refs, act=rounded(refs.act, CONTEXT_ACT_DECIMALS))
    windows = dash.window_activations(codes, stored_refs, rounded(stats.max_act), cfg.context_left, cfg.context_right,
                                      cfg.first_position)
    logits = dash.logit_lens(sae, model, cfg.n_logits)
    neighbors = dash.decoder_neighbors(sae, cfg.n_neighbors)
    n_dead = int((stats.n_fired == 0).sum())
    corpus = f"{config.corpus_path.name}[{config.corpus_rows[0]}:{config.corpus_rows[0] + codes.n_rows}]"
    tables = {
        "saes": arrow_table([sae_row(spec, sae, config.model_name, hook_name, corpus, result.stats, n_dead, cfg)], SaeRow),
        "latents": latents_table(spec.key, stats, logits, neighbors),
        "contexts": contexts_table(spec.key, stored_refs, codes.seq_len, config.corpus_rows[0]),
        "window_acts": window_acts_table(spec.key, windows),
        **running_text_tables(spec.key, codes, rows, sae.cfg.d_sae, cfg, letters, vocab),
    }
    referenced = np.unique(refs.token_index // codes.seq_len) + config.corpus_rows[0]
    return tables, referenced


def compute_sae_tables(spec: SAESpec, model, rows: np.ndarray, config: JobConfig) -> tuple[dict[str, pa.Table], SAETiming, np.ndarray]:
    """One SAE on its own (its own model pass). Returns the tables, timings and referenced rows."""
    sae = load_sae(spec, device=config.device)
    hook_name = sae_hook_name(sae)
    t0 = time.perf_counter()
    result = dash.collect_sparse_codes(model, sae, hook_name, rows, config.dashboard, config.device)
    t1 = time.perf_counter()
    vocab = [model.tokenizer.decode([i]) for i in range(model.cfg.d_vocab)] if model.tokenizer is not None else ()
    tables, referenced = sae_tables(spec, sae, result, model, config, rows, vocab=vocab)
    return tables, SAETiming(spec.key, t1 - t0, time.perf_counter() - t1, result.codes.n_tokens), referenced


def shared_passes(specs: list[SAESpec], max_bytes: int, weight_bytes=spec_weight_bytes) -> list[list[SAESpec]]:
    """One hook's SAEs in consecutive groups whose weights together stay within max_bytes (an SAE larger than
    that gets a pass of its own): each group shares one model pass."""
    passes: list[list[SAESpec]] = []
    total = 0
    for spec in specs:
        size = weight_bytes(spec)
        if not passes or total + size > max_bytes:
            passes.append([])
            total = 0
        passes[-1].append(spec)
        total += size
    return passes


def write_sae_tables(con, spec: SAESpec, tables: dict[str, pa.Table], referenced: np.ndarray, rows: np.ndarray,
                     config: JobConfig, relabel: bool = False) -> None:
    """One SAE's rows in one transaction, replacing any earlier rows for its key. Its absorption results stay
    when this build ran the absorption stage (it runs first, and has just written or kept them) or only adds the
    latent labels an older build did not write (`relabel`: the same SAE); a dashboards-only build otherwise drops
    them (a recomputed SAE may have changed since it was measured)."""
    have = db.existing_sequences(con, config.model_name)
    new_rows = np.array(sorted(set(referenced.tolist()) - have), dtype=np.int64)
    con.execute("BEGIN TRANSACTION")
    if config.absorption is None and not relabel:
        db.delete_sae(con, spec.key)
    else:
        db.delete_sae_dashboards(con, spec.key)
    for name, table in tables.items():
        db.insert_arrow(con, name, table)
    if len(new_rows):
        db.insert_arrow(con, "sequences", sequences_table(config.model_name, rows, new_rows, config.corpus_rows[0]))
    con.execute("COMMIT")


def letter_inputs(con, key: str, alphabetic: tuple[np.ndarray, np.ndarray] | None) -> LetterInputs | None:
    """The SAE's letter latents as the absorption stage wrote them (None in a dashboards-only build)."""
    if alphabetic is None:
        return None
    letters = [ts.LetterLatents(letter, main, split) for letter, main, split in db.sae_letter_latents(con, key)]
    return LetterInputs(alphabetic[0], alphabetic[1], letters)


def run_dashboards(con, todo: list[SAESpec], model, rows: np.ndarray, config: JobConfig, log=print) -> list[SAETiming]:
    timings: list[SAETiming] = []
    relabel = set() if config.force else db.unlabelled_saes(con)  # their pass only adds labels: the same SAE
    alphabetic = None if config.absorption is None else db.alphabetic_tokens(con, config.model_name)
    vocab = db.vocab_tokens(con, config.model_name)
    # SAEs at every hook share a pass (the model runs once, to the deepest hook of the group), hook by hook in order
    by_hook = [spec for specs in specs_by_hook(todo).values() for spec in specs]
    for group in shared_passes(by_hook, config.max_pass_sae_bytes):
        timings += run_dashboard_pass(con, group, model, rows, config, alphabetic, vocab, relabel, log)
    return timings


def run_dashboard_pass(con, specs: list[SAESpec], model, rows: np.ndarray, config: JobConfig,
                       alphabetic: tuple[np.ndarray, np.ndarray] | None, vocab: Sequence[str] = (),
                       relabel: set[str] = frozenset(), log=print) -> list[SAETiming]:
    """One model pass for these SAEs (at one hook or several), then each SAE's tables; each SAE and its codes are
    dropped once written, so post-processing does not hold the others' finished work."""
    saes = [load_sae(spec, device=config.device) for spec in specs]
    hook_names = [sae_hook_name(sae) for sae in saes]
    t0 = time.perf_counter()
    results = dash.collect_sparse_codes_for_hooks(model, saes, hook_names, rows, config.dashboard, config.device)
    pass_seconds = (time.perf_counter() - t0) / len(specs)  # the shared pass, split evenly
    hooks = ", ".join(sorted(set(hook_names), key=hook_names.index))
    timings: list[SAETiming] = []
    for spec in specs:
        sae, result = saes.pop(0), results.pop(0)
        t1 = time.perf_counter()
        tables, referenced = sae_tables(spec, sae, result, model, config, rows, letter_inputs(con, spec.key, alphabetic),
                                        vocab)
        write_sae_tables(con, spec, tables, referenced, rows, config, relabel=spec.key in relabel)
        timing = SAETiming(spec.key, pass_seconds, time.perf_counter() - t1, result.codes.n_tokens)
        del sae, result, tables
        timings.append(timing)
        log(f"{spec.key}: {timing.n_tokens} tokens, pass {timing.pass_seconds:.1f}s (shared by {len(specs)} "
            f"SAEs at {hooks}), post-processing {timing.post_seconds:.1f}s")
        crash_point(f"after-dashboards:{spec.key}")
    return timings


def dashboards_todo(con, specs: list[SAESpec], config: JobConfig, log=print) -> list[SAESpec]:
    """SAEs without dashboards (or all, with force), SAEs whose absorption results are newer than their
    dashboards (measured after a dashboards-only build, or a build killed between the two): their token_letters
    need the pass again, and SAEs without latent labels (a migrated database)."""
    done = db.existing_sae_keys(con)
    stale = db.letters_newer_than_dashboards(con) if config.absorption is not None else set()
    unlabelled = db.unlabelled_saes(con)
    todo = []
    for spec in specs:
        if config.force or spec.key not in done:
            todo.append(spec)
        elif spec.key in stale:
            log(f"recompute {spec.key}: its absorption results are newer than its dashboards (token_letters)")
            todo.append(spec)
        elif spec.key in unlabelled:
            log(f"recompute {spec.key}: its dashboards have no latent labels (written before schema v14)")
            todo.append(spec)
        else:
            log(f"skip {spec.key}: already in {config.db_path} (use --force to recompute)")
    return todo


class ModelMismatch(db.RefusedInput):
    """The build's SAEs cannot run on the model it would load: another model, or other processing."""


def same_model(a: str, b: str) -> bool:
    """Equal names, or TransformerLens aliases of one model (gpt2-small and gpt2)."""
    if a == b:
        return True
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        return get_official_model_name(a) == get_official_model_name(b)
    except ValueError:  # not a TransformerLens name
        return False


def check_sae_models(metadata: dict[str, dict], model_name: str) -> None:
    """Every SAE was trained on `model_name` (its metadata.model_name, where it has one). The default --model
    is the embedded SmolLM2: a gpt2-small release on it used to fail only after the whole absorption stage."""
    wrong = {key: m["model_name"] for key, m in metadata.items()
             if m.get("model_name") and not same_model(m["model_name"], model_name)}
    if wrong:
        named = ", ".join(f"`{key}` on `{name}`" for key, name in wrong.items())
        raise ModelMismatch(f"the build's model is `{model_name}` (--model), but these SAEs were trained on "
                            f"another: {named}. Pass --model with their model (one build per model).")


def shared_model_kwargs(metadata: dict[str, dict]) -> tuple:
    """The SAEs' common sae-lens `model_from_pretrained_kwargs` (without no-processing defaults), sorted pairs."""
    from precompute.loading.model import model_kwargs_key

    keys_by_kwargs: dict[tuple, list[str]] = {}
    for key, m in metadata.items():
        keys_by_kwargs.setdefault(model_kwargs_key(m.get("model_from_pretrained_kwargs")), []).append(key)
    if len(keys_by_kwargs) > 1:
        ways = "; ".join(f"{dict(kwargs) or 'no processing'}: {', '.join(keys)}" for kwargs, keys in keys_by_kwargs.items())
        raise ModelMismatch(f"these SAEs read the model loaded in different ways (their sae-lens "
                            f"model_from_pretrained_kwargs): {ways}. Build them in separate runs.")
    return next(iter(keys_by_kwargs), ())


def build_model_kwargs(specs: list[SAESpec], config: JobConfig) -> tuple:
    """Checked before any work, from the SAEs' configs: they all read this build's model and want it loaded
    the same way, returned (the embedded model has one fixed processing)."""
    from precompute.loading.model import EMBEDDED_MODEL_NAME
    from precompute.loading.sae import sae_metadata

    metadata = {spec.key: sae_metadata(spec) for spec in specs}
    check_sae_models(metadata, config.model_name)
    d_model = config_d_model(config.model_name)
    if d_model is not None:  # from the model's config, not its weights: before the work file is opened
        check_sae_widths(specs, d_model)
    return () if config.model_name == EMBEDDED_MODEL_NAME else shared_model_kwargs(metadata)


def config_d_model(model_name: str) -> int | None:
    """The model's width from its config alone: the shipped models' constants, else TransformerLens's config of a
    hub model (from the hub cache; None when it cannot be read here: the check then runs once the model loads)."""
    from precompute.loading.preflight import model_dims

    dims = model_dims(model_name)
    if dims is not None:
        return dims.d_model
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name, get_pretrained_model_config

        return int(get_pretrained_model_config(get_official_model_name(model_name)).d_model)
    except Exception:  # noqa: BLE001 - offline without a cached config, or not a TransformerLens name
        return None


def load_model_for(kwargs: tuple, config: JobConfig, specs: list[SAESpec], log=print):
    """The model as the SAEs were trained on it: a release such as gpt2-small-res-jb names processing
    (centred writing weights) that its activations assume."""
    from precompute.loading.model import load_model

    if kwargs:
        log(f"{config.model_name}: loaded with {', '.join(f'{k}={v}' for k, v in kwargs)} "
            "(the SAEs' model_from_pretrained_kwargs)")
    model = load_model(config.model_name, device=config.device, dtype=config.dtype, from_pretrained_kwargs=dict(kwargs))
    check_sae_widths(specs, model.cfg.d_model)
    return model


def check_sae_widths(specs: list[SAESpec], d_model: int) -> None:
    """Every SAE at a residual-width hook reads d_model-wide activations: checked as soon as the model is loaded
    (the CLI checks the shipped models' widths before loading them), not after the probe run."""
    from precompute.loading.preflight import RESIDUAL_WIDTH_HOOKS
    from precompute.loading.sae import sae_config

    for spec in specs:
        cfg = sae_config(spec)
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name") or ""
        if hook.endswith(RESIDUAL_WIDTH_HOOKS) and cfg.get("d_in") != d_model:
            raise ModelMismatch(f"SAE {spec.key} reads {cfg.get('d_in')}-wide activations at {hook}, but the model's "
                                f"are {d_model} wide: it was trained on another model (pass its --model)")


def run_job(specs: list[SAESpec], config: JobConfig, model=None, tokenizer=None, log=print) -> list[SAETiming]:
    model_kwargs = build_model_kwargs(specs, config) if model is None else ()  # a mismatch stops before any work
    rows = load_corpus_rows(config.corpus_path)[config.corpus_rows[0] : config.corpus_rows[1]]
    with db.atomic_database(config.db_path, start_from_existing=config.append, log=log, inputs=build_inputs(specs, config),
                            discard_work=config.discard_work, allowed_saes={spec.key for spec in specs}) as con:
        # Absorption first: the dashboards pass reads each SAE's letter latents for token_letters.
        if config.absorption is not None:
            from precompute.absorption.stage import run_absorption_stage
            from precompute.absorption.tasks import tasks_for_model

            tasks = tasks_for_model(config.tasks, config.model_name, log)
            wanted = {(s.key, task) for s in specs for task in tasks}
            if model is None and (config.force or wanted - set(db.absorption_configs(con))):
                model = load_model_for(model_kwargs, config, specs, log)
            if model is not None:
                run_absorption_stage(con, specs, model, config.model_name, config.absorption, config.force,
                                     device=config.device, log=log, tasks=tasks)
        todo = dashboards_todo(con, specs, config, log)
        if todo and model is None:
            model = load_model_for(model_kwargs, config, specs, log)
        if todo and not db.has_vocab(con, config.model_name):
            db.insert_arrow(con, "vocab", vocab_table(config.model_name, tokenizer or model.tokenizer, model.cfg.d_vocab))
        timings = run_dashboards(con, todo, model, rows, config, log) if todo else []
        if config.model_name == TOY_MODEL_NAME:
            from precompute.pipeline.truth import run_truth_stage

            run_truth_stage(con, specs, config.model_name, log)
        from precompute.pipeline.matching import run_matching_stage

        crash_point("before-matching")
        run_matching_stage(con, device=config.device, log=log)
        from precompute.pipeline.probe_free import run_scores_stage

        run_scores_stage(con, device=config.device, log=log)
        default = {DEFAULT_SAE_META_KEY: config.default_sae} if config.default_sae else {}
        db.write_meta(con, [config.model_name], {"corpus": str(config.corpus_path.name), **default})
    return timings
