"""SAEBench 0.6.0's first-letter absorption eval, step by step, with our activations (`--protocol saebench`).

Our own absorption build (measure.py) measures the same quantity with its own protocol (word sample, shared
prefixes, crossfit probe, k-sparse selection), so its numbers differ from SAEBench's (issue 26). This module is the
other way round: it runs SAEBench's eval exactly as `sae_bench/evals/absorption/main.py::run_eval` does, calling
SAEBench's own functions for every step that decides a number, and replaces only how the model is run:

1. words: a list of [token_id, text] (or `saebench_alpha_words`: SAEBench's alphabetic vocabulary, a seeded
   subsample of it); python, numpy and torch seeded with `seed` (run_eval never seeds; the SAEBench driver
   bench/peers/run_saebench_absorption.py seeds the same way, so both runs draw the same random streams);
2. `probing.create_dataset_probe_training`: SAEBench's 80/20 word split and random ICL prompts;
3. the probe's activations: OUR batched forward pass (`word_position_activations`: big batches, the model stopped
   after the hook's block, the 5 template tokens after the word not run) instead of `run_with_cache` on 64 prompts
   at a time over the whole model; fed through SAEBench's own `gen_and_save_df_acts_probing`;
4. `probing.train_linear_probe_for_task` (batch 64, 50 epochs, lr 1e-2: `common.train_and_save_probes`' values);
5. `k_sparse_probing.run_k_sparse_probing_experiment` (l1 probe on SAE latents, sklearn k-sparse probes for
   k = 1..10, split latents by the F1 jump) -- no model pass in it;
6. run_eval's stop: fewer than `min_feats_for_eval` letters with probe F1 > `min_GT_probe_f1` -> no result;
7. `feature_absorption.run_feature_absortion_experiment`: NEW random ICL prompts from the whole alphabetic
   vocabulary for each probe true positive (that vocabulary sorted: SAEBench's own order is a new random one at
   every call, so unsorted this step cannot be reproduced; `sorted_icl_vocabulary`), activations again from our forward pass (`OurActivationsModel`
   answers the calculator's `run_with_cache`), SAEBench's `FeatureAbsorptionCalculator` metric;
8. `main._aggregate_results_df`, run_eval's letter filter (probe F1 > min_GT_probe_f1) and means, and the
   result as SAEBench's own `AbsorptionEvalOutput` JSON.

The activations are bit-identical to SAEBench's (same tokens from `model.to_tokens`, no BOS, fp32; the causal
model cannot see the positions after the word; tests/precompute/absorption/test_saebench_protocol.py), so the
numbers are SAEBench's own: bench/absorption_eval.py --peer --protocol saebench compares them with the SAEBench
driver in one run (docs/saebench_parity.md).

Where it runs: sae-bench 0.6.0 needs numpy < 2 and datasets < 4, which the project's pins (numpy 2.4.6, datasets
5.2.0) rule out, so sae-bench lives in the peer venv bench/peers/.venv-saebench (`bash bench/peers/setup.sh
saebench`). This module imports sae-bench (and torch) only inside functions: `python -m precompute saebench`
in the project venv re-runs it in the peer venv (`python -m precompute.absorption.saebench_protocol`), which
needs only torch, TransformerLens, sae-lens, sae-bench and our loading code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

REPO = Path(__file__).resolve().parents[2]
PEER_PYTHON = REPO / "bench" / "peers" / ".venv-saebench" / "bin" / "python"
SAEBENCH_VERSION = "0.6.0"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
ALPHA = set(LETTERS + LETTERS.upper())
SETUP_HINT = "sae-bench 0.6.0 is not installed here: run `bash bench/peers/setup.sh saebench` (its own venv)"
Activations = Literal["ours", "saebench"]


@dataclass(frozen=True)
class SAEBenchProtocolConfig:
    """SAEBench 0.6.0's `AbsorptionEvalConfig` defaults (same names where they exist there), plus the values
    `common.train_and_save_probes` hard-codes for the probe, plus ours (activation batching)."""

    seed: int = 42  # random_seed: seeds python, numpy and torch once, before the prompts
    f1_jump_threshold: float = 0.03  # a k-sparse probe whose F1 beats k-1's by more adds a split latent
    max_k_value: int = 10  # k-sparse probes for k = 1..max_k_value
    prompt_template: str = "{word} has the first letter:"
    prompt_token_pos: int = -6  # the word's position from the end (the template's tail is 5 tokens)
    llm_dtype: str = "float32"
    llm_batch_size: int = 10  # SAEBench's batch in the absorption step (only with activations="saebench")
    k_sparse_probe_l1_decay: float = 0.01
    k_sparse_probe_batch_size: int = 4096
    k_sparse_probe_num_epochs: int = 50
    min_GT_probe_f1: float = 0.6  # a letter counts only if its probe's test F1 is above this  # noqa: N815
    min_feats_for_eval: int = 20  # fewer letters above min_GT_probe_f1: SAEBench gives no result
    eval_k_sparse_probe_batch_size: int = 24
    # SAEBench's default is False: True gives the same probes (the SAE's latents computed once), much faster on CPU
    precalc_k_sparse_probe_sae_acts: bool = True
    probe_batch_size: int = 64  # common.train_and_save_probes: probe training batch (and SAEBench's model batch)
    probe_num_epochs: int = 50
    probe_lr: float = 1e-2
    # ours: prompts per model call; "saebench" runs SAEBench's own run_with_cache path instead (the reference)
    activation_batch_size: int = 128
    activations: Activations = "ours"
    # SAEBench's absorption step draws its ICL examples from `get_alpha_tokens(tokenizer)`, whose order is that of
    # `tokenizer.vocab`: a dict built from a Rust hash map, in a new random order at every call, so that step's
    # prompts differ between two runs even with every seed fixed. True: the same list, sorted (reproducible).
    sorted_icl_vocabulary: bool = True

    def eval_config_fields(self) -> dict[str, Any]:
        """The fields of SAEBench's AbsorptionEvalConfig (model_name aside)."""
        return {"random_seed": self.seed, "f1_jump_threshold": self.f1_jump_threshold,
                "max_k_value": self.max_k_value, "prompt_template": self.prompt_template,
                "prompt_token_pos": self.prompt_token_pos, "llm_batch_size": self.llm_batch_size,
                "llm_dtype": self.llm_dtype, "k_sparse_probe_l1_decay": self.k_sparse_probe_l1_decay,
                "k_sparse_probe_batch_size": self.k_sparse_probe_batch_size,
                "k_sparse_probe_num_epochs": self.k_sparse_probe_num_epochs, "min_GT_probe_f1": self.min_GT_probe_f1,
                "min_feats_for_eval": self.min_feats_for_eval,
                "eval_k_sparse_probe_batch_size": self.eval_k_sparse_probe_batch_size,
                "precalc_k_sparse_probe_sae_acts": self.precalc_k_sparse_probe_sae_acts}


@dataclass(frozen=True)
class LetterRow:
    """One letter, as run_eval's aggregation sees it (`included`: in SAEBench's means and per-letter details)."""

    letter: str
    probe_f1: float  # the probe's test F1 (k-sparse probing's f1_probe)
    included: bool  # probe_f1 > min_GT_probe_f1 and at least one probe true positive
    split_latents: tuple[int, ...]  # the k-sparse probe's latents at the chosen k
    mean_absorption_fraction: float | None = None
    full_absorption_rate: float | None = None
    num_full_absorption: int | None = None
    num_probe_true_positives: int | None = None


@dataclass
class SAEBenchProtocolResult:
    sae: str
    hook: str
    seed: int
    n_words: int
    n_train: int
    n_test: int
    letters: list[LetterRow]
    stopped: str | None  # run_eval's stop (too few letters above min_GT_probe_f1): no means, no eval output
    mean_absorption_fraction: float | None = None
    mean_full_absorption: float | None = None
    mean_num_split_features: float | None = None
    std_absorption_fraction: float | None = None
    eval_output: dict[str, Any] | None = None  # SAEBench's AbsorptionEvalOutput, as its JSON file holds it
    checks: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def included(self) -> list[LetterRow]:
        return [row for row in self.letters if row.included]

    def summary(self) -> dict[str, Any]:
        """Everything but the eval output, JSON-ready (the last stdout line of the module's command)."""
        out = asdict(self)
        out.pop("eval_output")
        out["n_letters"] = len(self.included)
        return out


def sae_bench_available() -> bool:
    return importlib.util.find_spec("sae_bench") is not None


# -- words -------------------------------------------------------------------------------------------------------

def alpha_text(token: str, tokenizer) -> str:
    """vocab.convert_tokens_to_string: the token's text, with SAEBench's fix for a dropped leading space."""
    text = tokenizer.convert_tokens_to_string([token])
    if token and token[0] == "▁" and (not text or text[0] != " "):
        text = " " + text
    return text


def is_alpha_word(text: str) -> bool:
    """vocab.get_alpha_tokens' filter: ASCII letters only, after at most one leading space."""
    word = text[1:] if text.startswith(" ") else text
    return bool(word) and all(char in ALPHA for char in word)


@lru_cache(maxsize=2)
def readable_alpha_words(tokenizer, template: str, pos: int) -> tuple[tuple[int, str], ...]:
    """Every word of SAEBench's alphabetic vocabulary that it can read, in token-id order (saebench_alpha_words)."""
    seen: dict[str, int] = {}
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        text = alpha_text(token, tokenizer)
        if is_alpha_word(text) and text not in seen:
            seen[text] = token_id
    tail_ids = tokenizer(template.split("{word}", 1)[1], add_special_tokens=False)["input_ids"]
    if len(tail_ids) != -pos - 1:
        raise ValueError(f"the template's tail is {len(tail_ids)} tokens: the word is not at position {pos}")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    texts = list(seen)
    encoded = tokenizer(["\n" + template.format(word=text) for text in texts], add_special_tokens=False)["input_ids"]
    return tuple((seen[text], text) for text, ids in zip(texts, encoded) if ids == newline + [seen[text]] + tail_ids)


def saebench_alpha_words(tokenizer, n: int | None = None, seed: int = 42,
                         template: str = SAEBenchProtocolConfig.prompt_template,
                         pos: int = SAEBenchProtocolConfig.prompt_token_pos) -> list[tuple[int, str]]:
    """SAEBench's probe vocabulary (`get_alpha_tokens`: every token whose text is letters), as (token_id, text)
    in token-id order, keeping the words SAEBench can read: the word must be one token at `pos` of
    "\\n" + template (SAEBench indexes `pos` without checking) and no lower token id may have the same text.
    `n`: that many drawn with `random.Random(seed)` (a stream of its own: the global generators are seeded
    later, at the start of the eval), in token-id order. SAEBench itself iterates `tokenizer.vocab`, a dict in
    a new random order at every call: give both runs the same list to compare them."""
    words = list(readable_alpha_words(tokenizer, template, pos))
    if n is not None and n < len(words):
        words = sorted(random.Random(seed).sample(words, n))
    return words


# -- our activations --------------------------------------------------------------------------------------------

def no_grad(fn):
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


@no_grad
def word_position_activations(model: HookedTransformer, tokens: torch.Tensor, hook_name: str, layer: int,
                              pos: int, batch_size: int = 128) -> torch.Tensor:
    """[n, d_model] fp32 activations at `hook_name` on position `pos` (negative: from the end) of each row of
    `tokens` (equal-length prompts, as SAEBench's). The model runs only up to the hook's block and only over the
    positions up to `pos` (a causal model: the later ones cannot change it), `batch_size` rows at a time."""
    import torch

    if pos >= 0:
        raise ValueError(f"pos counts from the end and must be negative, not {pos}")
    keep = tokens.shape[1] + pos + 1
    out: list[torch.Tensor] = []
    for start in range(0, len(tokens), batch_size):
        store: list[torch.Tensor] = []
        model.run_with_hooks(tokens[start:start + batch_size, :keep].to(model.cfg.device), stop_at_layer=layer + 1,
                             fwd_hooks=[(hook_name, lambda act, hook: store.append(act[:, -1].detach()))])
        out.append(store[0].float().cpu())
    if not out:
        return torch.zeros((0, model.cfg.d_model))
    return torch.cat(out)


class OurActivationsModel:
    """What SAEBench's probe-activation and absorption steps ask of a model (`tokenizer`, `cfg`, `to_tokens`,
    `run_with_cache(prompts, names_filter=[hook])[1][hook][:, pos]`), answered by `word_position_activations`.
    The cache it returns holds only the last -pos positions, the word's at `pos` and zeros after it: SAEBench
    reads nothing else."""

    def __init__(self, model: HookedTransformer, layer: int, pos: int, batch_size: int,
                 seconds: dict[str, float] | None = None) -> None:
        self.model, self.layer, self.pos, self.batch_size = model, layer, pos, batch_size
        self.seconds = seconds if seconds is not None else {}

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def cfg(self):
        return self.model.cfg

    def to_tokens(self, *args, **kwargs):
        return self.model.to_tokens(*args, **kwargs)

    def run_with_cache(self, prompts, names_filter=None, **_):
        import torch

        hook = f"blocks.{self.layer}.hook_resid_post"
        if names_filter is None or list(names_filter) != [hook]:
            raise ValueError(f"only {hook} is computed here, not {names_filter}")
        start = time.perf_counter()
        tokens = self.model.to_tokens(list(prompts))  # SAEBench's own tokenization (right padding, no BOS here)
        acts = word_position_activations(self.model, tokens, hook, self.layer, self.pos, self.batch_size)
        cache = torch.zeros((len(acts), -self.pos, acts.shape[-1]), dtype=acts.dtype)
        cache[:, self.pos] = acts
        self.seconds["model_passes"] = self.seconds.get("model_passes", 0.0) + time.perf_counter() - start
        return None, {hook: cache}


def check_prompts(tokenizer, datasets, word_ids: dict[str, int], template: str, pos: int) -> dict[str, Any]:
    """SAEBench right-pads a batch and reads position `pos` without checking: every prompt must have the same
    length, the template's tail must be -pos-1 tokens, and the word must be its one token at `pos`."""
    tail = template.split("{word}", 1)[1]
    n_tail = len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    lengths, misplaced = set(), 0
    for dataset in datasets:
        prompts = [prompt for prompt, _ in dataset]
        encoded = tokenizer([p.base for p in prompts], add_special_tokens=False)["input_ids"]
        for prompt, ids in zip(prompts, encoded):
            lengths.add(len(ids))
            if ids[pos] != word_ids[prompt.word]:
                misplaced += 1
    checks = {"prompt_lengths": sorted(lengths), "tail_tokens": n_tail, "word_not_at_position": misplaced}
    if len(lengths) != 1 or n_tail != -pos - 1 or misplaced:
        raise ValueError(f"prompts do not fit SAEBench's fixed position {pos}: {checks}")
    return checks


# -- the eval ----------------------------------------------------------------------------------------------------

def load_sae_as_saebench(path: Path) -> SAE:
    """As the SAEBench driver and `general_utils.load_and_format_sae` (a custom SAE object): sae-lens's
    `load_from_disk` in fp32, `fold_W_dec_norm()`, SAEBench's decoder-norm check and cfg standardisation."""
    from sae_lens import SAE

    return format_sae_as_saebench(SAE.load_from_disk(str(path), device="cpu", dtype="float32"))


def format_sae_as_saebench(sae: SAE) -> SAE:
    """`fold_W_dec_norm()` (unit decoder rows), then `load_and_format_sae` for a custom SAE object."""
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    sae.fold_W_dec_norm()
    _, sae, _ = load_and_format_sae("custom", sae, "cpu")
    return sae


@contextmanager
def sorted_icl_vocabulary(enabled: bool = True):
    """While active, SAEBench's absorption step draws its ICL examples from `sorted(get_alpha_tokens(...))`: the
    same words as SAEBench's, in an order that does not change from call to call (see SAEBenchProtocolConfig)."""
    from sae_bench.evals.absorption import feature_absorption

    original = feature_absorption.get_alpha_tokens
    if enabled:
        feature_absorption.get_alpha_tokens = lambda tokenizer, *a, **kw: sorted(original(tokenizer, *a, **kw))
    try:
        yield
    finally:
        feature_absorption.get_alpha_tokens = original


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_saebench_protocol(model: HookedTransformer, sae: SAE, words: list[tuple[int, str]],
                          config: SAEBenchProtocolConfig = SAEBenchProtocolConfig(), sae_name: str = "custom_sae",
                          workdir: Path | None = None, log=lambda *_: None) -> SAEBenchProtocolResult:
    """SAEBench 0.6.0's absorption eval of `sae` on `model` over `words` ([token_id, text], in the order given:
    SAEBench's random split depends on it). `sae` as `load_sae_as_saebench` gives it. Needs sae-bench."""
    import torch
    from sae_bench.evals.absorption import probing
    from sae_bench.evals.absorption.feature_absorption import run_feature_absortion_experiment
    from sae_bench.evals.absorption.k_sparse_probing import run_k_sparse_probing_experiment
    from sae_bench.evals.absorption.main import _aggregate_results_df
    from sae_bench.evals.absorption.prompting import first_letter_formatter

    hook = sae.cfg.metadata.hook_name
    layer = int(hook.split(".")[1])
    if hook != f"blocks.{layer}.hook_resid_post":
        raise ValueError(f"SAEBench's absorption eval reads blocks.<layer>.hook_resid_post, not {hook}")
    vocab = [text for _, text in words]
    word_ids = {text: token_id for token_id, text in words}
    if len(word_ids) != len(words):
        raise ValueError("two token ids with the same text in the word list")
    seconds: dict[str, float] = {}

    @contextmanager
    def step(name: str):
        start = time.perf_counter()
        log(f"saebench protocol: {name}")
        yield
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    if config.activations == "ours":
        runner = OurActivationsModel(model, layer, config.prompt_token_pos, config.activation_batch_size, seconds)
        probe_act_batch, absorption_batch = max(1, 10**9), 10**9  # one call per split / letter; ours batches
    else:  # SAEBench's own model calls (the driver's path): the reference the tests compare with
        runner, probe_act_batch, absorption_batch = model, config.probe_batch_size, config.llm_batch_size

    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(True)  # as run_eval: the probes are trained with autograd
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="saebench-protocol-")
        workdir = Path(tmp.name)
    try:
        probes_dir, results_dir = workdir / "probes", workdir / "results"
        probe_path = probes_dir / model.cfg.model_name / f"layer_{layer}"  # where k-sparse probing looks
        seed_everything(config.seed)
        with step("prompts"):
            train_set, test_set = probing.create_dataset_probe_training(
                vocab=vocab, formatter=first_letter_formatter(), num_prompts_per_token=1,
                base_template=config.prompt_template)
        missing = [LETTERS[i] for i in range(26) if i not in {answer for _, answer in train_set}]
        if missing:  # SAEBench would fail in k-sparse probing (KeyError) after the probe's model passes
            raise ValueError(f"no training word starts with {', '.join(missing)}: SAEBench's k-sparse probing "
                             "needs every letter; use more words")
        checks = check_prompts(model.tokenizer, (train_set, test_set), word_ids, config.prompt_template,
                               config.prompt_token_pos)
        with step("probe_activations"):
            train_df, test_df, train_acts, test_acts = probing.gen_and_save_df_acts_probing(
                model=runner, train_dataset=train_set, test_dataset=test_set, path=probe_path, hook_point=hook,
                batch_size=probe_act_batch, position_idx=config.prompt_token_pos)
        with step("probe_training"):
            probe, probe_data = probing.train_linear_probe_for_task(
                train_df=train_df, test_df=test_df, train_activations=train_acts, test_activations=test_acts,
                num_classes=26, batch_size=config.probe_batch_size, num_epochs=config.probe_num_epochs,
                lr=config.probe_lr, device=torch.device("cpu"))
            probing.save_probe_and_data(probe, probe_data, probing_path=probe_path)
        with step("k_sparse_probing"):
            k_sparse = run_k_sparse_probing_experiment(
                model=model, sae=sae, layer=layer, sae_name=sae_name, force=True,
                max_k_value=config.max_k_value, f1_jump_threshold=config.f1_jump_threshold,
                prompt_template=config.prompt_template, prompt_token_pos=config.prompt_token_pos, device="cpu",
                k_sparse_probe_l1_decay=config.k_sparse_probe_l1_decay,
                k_sparse_probe_batch_size=config.k_sparse_probe_batch_size,
                k_sparse_probe_num_epochs=config.k_sparse_probe_num_epochs,
                eval_batch_size=config.eval_k_sparse_probe_batch_size,
                precalc_k_sparse_probe_sae_acts=config.precalc_k_sparse_probe_sae_acts,
                experiment_dir=results_dir / "k_sparse_probing", probes_dir=probes_dir, verbose=False)
        f1 = {row["letter"]: float(row["f1_probe"]) for _, row in k_sparse.iterrows()}
        split = {row["letter"]: tuple(int(i) for i in row["split_feats"]) for _, row in k_sparse.iterrows()}
        enough = sum(value > config.min_GT_probe_f1 for value in f1.values())
        stopped, agg = None, None
        if enough < config.min_feats_for_eval:  # run_eval's `break`: no result for the SAE
            stopped = (f"SAEBench stops after k-sparse probing: {enough} letters with probe F1 > "
                       f"{config.min_GT_probe_f1} (< min_feats_for_eval = {config.min_feats_for_eval}); "
                       "use more words")
        else:
            with step("absorption"), sorted_icl_vocabulary(config.sorted_icl_vocabulary):
                raw = run_feature_absortion_experiment(
                    model=runner, sae=sae, layer=layer, sae_name=sae_name, force=True,
                    max_k_value=config.max_k_value, feature_split_f1_jump_threshold=config.f1_jump_threshold,
                    prompt_template=config.prompt_template, prompt_token_pos=config.prompt_token_pos,
                    batch_size=absorption_batch, device="cpu",
                    experiment_dir=results_dir / "feature_absorption",
                    sparse_probing_experiment_dir=results_dir / "k_sparse_probing", probes_dir=probes_dir)
                agg = _aggregate_results_df(raw) if len(raw) else None
    finally:
        torch.set_grad_enabled(grad)
        if tmp is not None:
            tmp.cleanup()

    measured = {} if agg is None else {row["letter"]: row for _, row in agg.iterrows()}
    letters = []
    for letter in LETTERS:
        row = measured.get(letter)
        included = row is not None and f1[letter] > config.min_GT_probe_f1
        letters.append(LetterRow(
            letter=letter, probe_f1=f1[letter], included=included, split_latents=split[letter],
            mean_absorption_fraction=None if row is None else float(row["mean_absorption_fraction"]),
            full_absorption_rate=None if row is None else float(row["full_absorption_rate"]),
            num_full_absorption=None if row is None else int(row["num_full_absorption"]),
            num_probe_true_positives=None if row is None else int(row["num_probe_true_positives"])))
    result = SAEBenchProtocolResult(sae=sae_name, hook=hook, seed=config.seed, n_words=len(words),
                                    n_train=len(train_set), n_test=len(test_set), letters=letters, stopped=stopped,
                                    checks=checks, seconds=seconds)
    rows = result.included
    if stopped is None and len(rows) > 1:
        fractions = [r.mean_absorption_fraction for r in rows]
        result.mean_absorption_fraction = statistics.mean(fractions)
        result.mean_full_absorption = statistics.mean(r.full_absorption_rate for r in rows)
        result.mean_num_split_features = statistics.mean(len(r.split_latents) for r in rows)
        result.std_absorption_fraction = statistics.stdev(fractions)
        result.eval_output = saebench_eval_output(result, sae, model.cfg.model_name, config)
    elif stopped is None:
        result.stopped = f"{len(rows)} letter(s) measured: SAEBench's standard deviations need two"
    return result


def saebench_eval_output(result: SAEBenchProtocolResult, sae: SAE, model_name: str,
                         config: SAEBenchProtocolConfig) -> dict[str, Any]:
    """run_eval's `AbsorptionEvalOutput`, built with SAEBench's own pydantic models (so it is valid under its
    schema), as the dict its JSON file holds. `sae_bench_commit_hash` is the installed version (run_eval runs
    `git rev-parse HEAD` in the working directory, which here would name this repository's commit)."""
    import uuid
    from datetime import datetime
    from importlib.metadata import version

    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig
    from sae_bench.evals.absorption.eval_output import (
        EVAL_TYPE_ID_ABSORPTION,
        AbsorptionEvalOutput,
        AbsorptionMeanMetrics,
        AbsorptionMetricCategories,
        AbsorptionResultDetail,
    )

    rows = result.included
    details = [AbsorptionResultDetail(first_letter=r.letter, mean_absorption_fraction=r.mean_absorption_fraction,
                                      full_absorption_rate=r.full_absorption_rate,
                                      num_full_absorption=r.num_full_absorption,
                                      num_probe_true_positives=r.num_probe_true_positives,
                                      num_split_features=len(r.split_latents)) for r in rows]
    fractions = [r.mean_absorption_fraction for r in rows]
    full = [r.full_absorption_rate for r in rows]
    splits = [len(r.split_latents) for r in rows]
    output = AbsorptionEvalOutput(
        eval_type_id=EVAL_TYPE_ID_ABSORPTION,
        eval_config=AbsorptionEvalConfig(model_name=model_name, **config.eval_config_fields()),
        eval_id=str(uuid.uuid4()),
        datetime_epoch_millis=int(datetime.now().timestamp() * 1000),
        eval_result_metrics=AbsorptionMetricCategories(mean=AbsorptionMeanMetrics(
            mean_absorption_fraction_score=statistics.mean(fractions),
            mean_full_absorption_score=statistics.mean(full),
            mean_num_split_features=statistics.mean(splits),
            std_dev_absorption_fraction_score=statistics.stdev(fractions),
            std_dev_full_absorption_score=statistics.stdev(full),
            std_dev_num_split_features=statistics.stdev(splits))),
        eval_result_details=details,
        sae_bench_commit_hash=f"sae-bench {version('sae-bench')}",
        sae_lens_id="custom_sae",
        sae_lens_release_id=result.sae,
        sae_lens_version=version("sae-lens"),
        sae_cfg_dict=sae.cfg.to_dict(),
    )
    return json.loads(output.to_json())


def validate_eval_output(data: dict[str, Any]) -> None:
    """Load a result with SAEBench's own `AbsorptionEvalOutput` model (raises if it does not fit its schema)."""
    from pydantic import TypeAdapter
    from sae_bench.evals.absorption.eval_output import AbsorptionEvalOutput

    TypeAdapter(AbsorptionEvalOutput).validate_python(data)


# -- the command -------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (`python -m precompute saebench` and `python -m precompute.absorption.saebench_protocol`)."""
    default = SAEBenchProtocolConfig()
    parser.add_argument("--sae", type=Path, required=True, help="sae-lens SAE folder (cfg.json + weights)")
    parser.add_argument("--words", type=int, default=0,
                        help="draw this many words from SAEBench's alphabetic vocabulary with --seed "
                             "(default 0: all of it, about 47,000 words on SmolLM2: over an hour on 2 CPU cores)")
    parser.add_argument("--words-file", type=Path, default=None,
                        help="instead: a JSON list of [token_id, text], used in its order (what the SAEBench "
                             "driver bench/peers/run_saebench_absorption.py takes)")
    parser.add_argument("--seed", type=int, default=default.seed, help="SAEBench's random_seed (default 42)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write SAEBench's result JSON (AbsorptionEvalOutput) here; not written when "
                             "SAEBench would give no result (too few letters above min_GT_probe_f1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=default.activation_batch_size,
                        help="prompts per model call of our forward pass")
    parser.add_argument("--activations", choices=["ours", "saebench"], default="ours",
                        help="'saebench': SAEBench's own run_with_cache calls instead (the reference)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep SAEBench's artifacts here")


def main(argv: list[str] | None = None) -> int:
    """Runs the protocol in this interpreter (sae-bench must import here); prints the summary JSON as the last
    stdout line."""
    import os

    parser = argparse.ArgumentParser(prog="python -m precompute.absorption.saebench_protocol",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from precompute.loading.model import load_model

    start = time.perf_counter()
    model = load_model()
    sae = load_sae_as_saebench(args.sae)
    loaded = time.perf_counter() - start
    if args.words_file is not None:
        words = [(int(i), str(t)) for i, t in json.loads(args.words_file.read_text())]
    else:
        words = saebench_alpha_words(model.tokenizer, args.words or None, args.seed)
    config = SAEBenchProtocolConfig(seed=args.seed, activation_batch_size=args.batch_size,
                                    activations=args.activations)
    try:
        result = run_saebench_protocol(model, sae, words, config, sae_name=args.sae.name, workdir=args.workdir,
                                       log=lambda message: print(message, file=sys.stderr, flush=True))
    except ValueError as error:  # words that do not fit SAEBench's protocol: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    result.seconds["load"] = loaded
    result.seconds["eval_total"] = sum(v for k, v in result.seconds.items() if k not in ("load", "model_passes"))
    if result.eval_output is not None:
        validate_eval_output(result.eval_output)
        if args.out is not None:
            args.out.write_text(json.dumps(result.eval_output, indent=2))
    else:
        print(f"no SAEBench result: {result.stopped}", file=sys.stderr)
    summary = result.summary()
    summary["threads"] = torch.get_num_threads()
    summary["words"] = words if args.words_file is None else str(args.words_file)
    print(json.dumps(summary), flush=True)
    return 0


def command(args: argparse.Namespace) -> int:
    """`python -m precompute saebench`: here when sae-bench imports, else in the peer venv (same options)."""
    names = ("sae", "words", "words_file", "seed", "out", "threads", "batch_size", "activations", "workdir")
    argv = [f"--{name.replace('_', '-')}={value.resolve() if isinstance(value, Path) else value}"
            for name, value in vars(args).items() if name in names and value is not None]
    if sae_bench_available():
        return main(argv)
    if not PEER_PYTHON.exists():
        raise FileNotFoundError(SETUP_HINT)
    return subprocess.call([str(PEER_PYTHON), "-m", "precompute.absorption.saebench_protocol", *argv], cwd=REPO)


if __name__ == "__main__":
    raise SystemExit(main())
