"""The sweep: one shared activation cache (sae-lens's format) and resumable training from it."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from precompute.train import activation_cache as ac
from precompute.train import sweep as sw
from precompute.train import training
from tests.helpers import random_corpus

HOOKS = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")
N_ROWS = 40
CTX = 32


def small_model() -> HookedTransformer:
    """A random 2-layer model with live attention and MLPs, so layers differ."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=CTX, d_head=4, n_heads=4, d_mlp=32, d_vocab=60,
                                  act_fn="relu", normalization_type="LN", seed=1, device="cpu")
    return HookedTransformer(cfg)


def cache_spec(rows: int = N_ROWS, per_shard: int = 16) -> ac.ActivationCacheSpec:
    return ac.ActivationCacheSpec(model_name="tiny", hooks=HOOKS, corpus_rows=(0, rows), dtype="float32",
                                  rows_per_shard=per_shard, batch_size=8)


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "corpus.parquet"
    return path, random_corpus(path, N_ROWS, seq_len=CTX)


def test_cache_holds_each_hooks_activations_without_position_0(tmp_path, corpus):
    path, rows = corpus
    model = small_model()
    paths = ac.build_activation_cache(cache_spec(), path, model, root=tmp_path / "acts")
    _, expected = model.run_with_cache(torch.tensor(rows), names_filter=list(HOOKS))
    for hook in HOOKS:
        dataset = datasets.load_from_disk(str(paths[hook]))
        assert len(dataset) == N_ROWS  # 3 shards: 16 + 16 + 8 rows, merged in order
        assert dataset.features[hook].shape == (CTX - 1, 16)
        dataset.set_format("torch")
        assert torch.allclose(dataset[:][hook], expected[hook][:, 1:], atol=1e-5)
        assert torch.equal(dataset[:]["token_ids"], torch.tensor(rows[:, 1:]))
        assert json.loads((paths[hook] / ac.DONE_FILE).read_text())["context_size"] == CTX - 1
    assertions_on_layers_differ = not torch.allclose(expected[HOOKS[0]], expected[HOOKS[1]])
    assert assertions_on_layers_differ


def test_interrupted_cache_resumes_at_the_first_missing_shard(tmp_path, corpus, monkeypatch):
    path, _ = corpus
    model = small_model()
    real = ac.shard_activations
    calls: list[int] = []

    def crash_on_second_shard(model, tokens, spec):
        calls.append(len(tokens))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, tokens, spec)

    monkeypatch.setattr(ac, "shard_activations", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        ac.build_activation_cache(cache_spec(), path, model, root=tmp_path / "acts")
    assert not ac.is_complete(cache_spec(), tmp_path / "acts")
    calls.clear()
    monkeypatch.setattr(ac, "shard_activations", lambda m, t, s: (calls.append(len(t)), real(m, t, s))[1])
    ac.build_activation_cache(cache_spec(), path, model, root=tmp_path / "acts")
    assert calls == [16, 8]  # shard 0 was kept; shards 1 and 2 were computed
    assert ac.is_complete(cache_spec(), tmp_path / "acts")
    assert len(datasets.load_from_disk(str(cache_spec().hook_path(HOOKS[1], tmp_path / "acts")))) == N_ROWS


def write_recipe(folder: Path, name: str, **fields) -> Path:
    recipe = {"name": name, "model_name": "tiny", "hook_name": HOOKS[1], "d_sae": 32, "k": 4,
              "training_tokens": 2_000, "train_batch_size_tokens": 124, "lr": 1e-3, "lr_warm_up_steps": 0,
              "lr_decay_steps": 0, "store_batch_size_prompts": 4, "n_batches_in_buffer": 8,
              "dead_feature_window": 5, "corpus_rows": [0, N_ROWS], "activation_cache": True, **fields}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(recipe))
    return path


@pytest.fixture
def sweep_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(training, "CHECKPOINT_ROOT", tmp_path / "checkpoints")
    monkeypatch.setattr(sw, "CHECKPOINT_ROOT", tmp_path / "checkpoints")
    recipes = [write_recipe(tmp_path, "tiny-topk"),
               write_recipe(tmp_path, "tiny-jumprelu", architecture="jumprelu", target_l0=4, l0_warm_up_steps=2,
                            normalize_activations="expected_average_only_in")]
    spec = {"model_name": "tiny", "hooks": list(HOOKS), "corpus_rows": [0, N_ROWS], "dtype": "float32",
            "rows_per_shard": 16, "batch_size": 8}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"name": "tiny", "activation_cache": spec, "recipes": [str(p) for p in recipes]}))
    return path


def test_sweep_trains_every_recipe_from_the_cache_then_skips_finished_ones(tmp_path, corpus, sweep_file, monkeypatch):
    from sae_lens import SAE

    path, _ = corpus
    model = small_model()
    sweep = sw.Sweep.from_file(sweep_file)
    model_calls: list[int] = []
    monkeypatch.setattr(model, "run_with_cache", lambda *a, **k: (model_calls.append(1),
                                                                  HookedTransformer.run_with_cache(model, *a, **k))[1])
    run = dict(corpus_path=path, output_root=tmp_path / "saes", cache_root=tmp_path / "acts", model=model,
               card_rows=(0, 8), log=lambda *_: None)
    written = sw.run_sweep(sweep, **run)
    assert [f.name for f in written] == ["tiny-topk", "tiny-jumprelu"]
    # both recipes train at HOOKS[1]: the sweep's other hook is not cached (a new SAE does not pay for other layers)
    assert (sweep.cache.hook_path(HOOKS[1], tmp_path / "acts") / ac.DONE_FILE).exists()
    assert not sweep.cache.hook_path(HOOKS[0], tmp_path / "acts").exists()
    # one cache pass (40 rows / 8 per call) shared by both SAEs + one card pass each: training never runs the model
    assert len(model_calls) == 5 + 2
    for folder in written:
        sae = SAE.load_from_disk(str(folder), device="cpu")
        card = json.loads((folder / "card.json").read_text())
        assert sae.cfg.d_sae == 32 and card["hook_name"] == HOOKS[1] and 0 < card["l0"] <= 32
    assert json.loads((written[0] / "card.json").read_text())["l0"] == pytest.approx(4.0)
    assert json.loads((written[1] / "cfg.json").read_text())["architecture"] == "jumprelu"

    before = (written[0] / "sae_weights.safetensors").stat().st_mtime_ns
    assert sw.run_sweep(sweep, **run) == []  # both finished: nothing retrained
    assert (written[0] / "sae_weights.safetensors").stat().st_mtime_ns == before
    again = sw.run_sweep(sweep, only={"tiny-topk"}, force=True, **run)
    assert [f.name for f in again] == ["tiny-topk"]


def test_sweep_rejects_unknown_names_and_hooks_outside_the_cache(tmp_path, sweep_file):
    sweep = sw.Sweep.from_file(sweep_file)
    with pytest.raises(ValueError, match="not in sweep"):
        sw.select_recipes(sweep, tmp_path / "saes", only={"nope"})
    recipe = training.TrainingRecipe.from_file(write_recipe(tmp_path, "elsewhere", hook_name="blocks.5.hook_resid_post"))
    with pytest.raises(ValueError, match="does not hold"):
        sw.check_recipe_matches_cache(recipe, sweep.cache)


def test_shipped_sweep_recipes_all_load_and_fit_the_cache():
    sweep = sw.Sweep.from_file(Path("recipes/sweeps/smollm2-embedded.json"))
    recipes = [r for _, r in sweep.recipes()]
    for recipe in recipes:
        sw.check_recipe_matches_cache(recipe, sweep.cache)
    main_hook = [r for r in recipes if r.hook_name == "blocks.6.hook_resid_post"]
    assert len(recipes) >= 8 and len(main_hook) >= 6
    assert {r.architecture for r in main_hook} >= {"topk", "jumprelu"}
    widths = {r.d_sae for r in main_hook}
    assert max(widths) / min(widths) >= 4
    assert {r.k for r in main_hook if r.architecture == "topk"} >= {16, 32, 64}
    assert len({r.hook_name for r in recipes}) >= 3
    assert all(r.training_tokens >= 5_000_000 for r in recipes)


def test_a_checkpoint_is_resumed_only_by_the_recipe_that_wrote_it(tmp_path, monkeypatch):
    """Editing a recipe (e.g. its L0 coefficient) must not resume the old configuration's trainer state."""
    from dataclasses import replace

    monkeypatch.setattr(training, "CHECKPOINT_ROOT", tmp_path / "checkpoints")
    recipe = training.TrainingRecipe.from_file(write_recipe(tmp_path, "tiny-jumprelu", architecture="jumprelu"))
    for step in ("100", "200"):
        state = training.checkpoint_dir(recipe) / "run-id" / step
        state.mkdir(parents=True)
        (state / training.TRAINER_STATE_FILE).write_bytes(b"")
    (training.checkpoint_dir(recipe) / "run-id" / "300").mkdir()  # killed mid-save: no trainer state
    assert training.latest_checkpoint(recipe) == training.checkpoint_dir(recipe) / "run-id" / "200"
    edited = replace(recipe, l0_coefficient=recipe.l0_coefficient / 10)
    assert training.recipe_fingerprint(edited) != training.recipe_fingerprint(recipe)
    assert training.latest_checkpoint(edited) is None


def test_the_matryoshka_recipe_nests_its_prefixes_on_its_topk_peers_budget():
    """The sweep's Matryoshka BatchTopK SAE (issue: absorption beyond first letters, §2): the main hook, 4,096 latents,
    L0 32 and the same cached 5 M tokens as the TopK 4k SAEs; sae-lens gets nested widths ending at d_sae."""
    from dataclasses import replace

    recipes = {r.name: r for _, r in sw.Sweep.from_file(Path("recipes/sweeps/smollm2-embedded.json")).recipes()}
    matryoshka, peer = recipes["smollm2-l6-matryoshka-4k-k32"], recipes["smollm2-l6-topk-4k-k16"]
    assert (matryoshka.hook_name, matryoshka.d_sae, matryoshka.k) == (peer.hook_name, 4096, 32)
    assert (matryoshka.training_tokens, matryoshka.corpus_rows, matryoshka.activation_cache) == \
        (peer.training_tokens, peer.corpus_rows, True)
    config = training.sae_training_config(matryoshka, d_in=576)
    assert type(config).architecture() == "matryoshka_batchtopk"
    assert config.matryoshka_widths == [128, 512, 1024, 2048, 4096] and config.k == 32
    with pytest.raises(ValueError, match="must end with d_sae"):
        training.sae_training_config(replace(matryoshka, matryoshka_widths=(128, 512)), d_in=576)
