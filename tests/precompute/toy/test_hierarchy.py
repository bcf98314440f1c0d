"""The browsable toy run (precompute/toy/hierarchy.py): its model's residual is each token's feature combination,
its task labels exactly the toy words, and a small toy build writes the ground truth against which the projection
metric recovers the planted absorption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend import truth
from backend.database import ExplorerDB
from precompute.absorption.config import AbsorptionConfig, config_for_task
from precompute.absorption.hook import select_words
from precompute.absorption.prompts import build_prompt_set, letter_token_ids
from precompute.absorption.tasks import TOY_HIERARCHY, TOY_PARENTS, tasks_for_model
from precompute.absorption.vocab import task_vocabulary, word_position
from precompute.toy import hierarchy as toy
from tests import helpers


@pytest.fixture(scope="module")
def model():
    return toy.load_toy_model()


def test_residual_is_the_tokens_feature_combination(model):
    weights = toy.load_toy_weights()
    expected = weights["token_features"] @ weights["feature_directions"]  # [d_vocab, d_model]
    tokens = torch.tensor([[3, 50, 120, 7, 200, 226, 2, 0]])
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: "resid" in name)
    for hook in ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"):
        torch.testing.assert_close(cache[hook][0], expected[tokens[0]], atol=1e-6, rtol=0)
    # one feature direction per named feature of the word: animalCatBig = animal + cat + big
    index, word = toy.feature_index(), model.tokenizer.convert_tokens_to_ids("animalCatBig")
    directions = weights["feature_directions"]
    torch.testing.assert_close(weights["W_E"][word], directions[index["animal"]] + directions[index["cat"]]
                               + directions[index["big"]])


def test_task_labels_exactly_the_toy_words_with_their_parent(model):
    assert TOY_PARENTS == toy.PARENTS  # the registry's copy of the names (it imports no torch)
    words = task_vocabulary(model.tokenizer, TOY_HIERARCHY)
    assert {(w.text, w.letter) for w in words} == {(w.text, w.parent) for w in toy.words() if w.parent}
    assert len(words) == 4 * 6 * 9  # (parent alone + 5 children) x (no filler + 8 fillers)
    assert tasks_for_model(("first_letter", "toy_hierarchy"), "smollm2-135m-embedded", log=lambda _: None) == ("first_letter",)
    assert tasks_for_model(("toy_hierarchy",), toy.TOY_MODEL_NAME) == ("toy_hierarchy",)


def test_prompts_tokenize_word_by_word(model):
    """The ICL prompt builder keeps every word (prefix + word + tail), and the answers are single tokens."""
    config = config_for_task(AbsorptionConfig(run_ablation_metric=False), "toy_hierarchy")
    train, measured = select_words(model.tokenizer, config)
    prompts = build_prompt_set(model.tokenizer, train, measured, config.prompts, True, 64, None)
    assert prompts.n_dropped == 0 and len(prompts) == len(measured)
    ids = prompts.prompt_ids(0)
    assert word_position(model.tokenizer, ids, prompts.words[0], config.prompts) == len(ids) - 2
    assert model.tokenizer.convert_ids_to_tokens(letter_token_ids(model.tokenizer, config.prompts)) == list(toy.PARENTS)


def test_a_small_toy_build_recovers_the_planted_absorption(tmp_path: Path):
    from precompute.loading.sae import SAESpec
    from precompute.pipeline.dashboards import DashboardConfig
    from precompute.pipeline.job import JobConfig, run_job

    db_path = tmp_path / "toy.duckdb"
    config = JobConfig(model_name=toy.TOY_MODEL_NAME, corpus_path=toy.TOY_DIR / "corpus.parquet", corpus_rows=(0, 64),
                       db_path=db_path, dashboard=DashboardConfig(n_neighbors=0),
                       absorption=AbsorptionConfig(run_ablation_metric=False), tasks=("toy_hierarchy",))
    with helpers.recording_writes() as written:
        run_job([SAESpec(key=toy.TOY_SAE_KEY, path=toy.TOY_SAE_DIR)], config, log=lambda _: None)
    assert set(written) >= helpers.TOY_BUILD_TABLES
    assert not helpers.ddl_mismatches(written), helpers.ddl_mismatches(written)
    db = ExplorerDB(db_path)
    try:
        assert db.has_truth(toy.TOY_SAE_KEY)
        assert len(db.truth_features(toy.TOY_SAE_KEY)) == 32
        latents = db.truth_latents(toy.TOY_SAE_KEY)
        absorbing = truth.absorbing(latents)
        # every child feature has exactly one absorbing latent (its decoder carries the child and its parent, cos >=
        # ABSORBING_COS each: the planted absorption), and no other latent absorbs
        children = {c for p in toy.PARENTS for c in toy.CHILDREN[p]}
        assert set(absorbing["child"]) == children and len(absorbing) == len(children)
        verdicts = truth.verdicts(db.truth_verdict_counts(toy.TOY_SAE_KEY, "toy_hierarchy"))
        pooled = verdicts["all"]
        assert pooled.n_words > 150  # nearly every word is a probe true positive (the residual is exact)
        assert pooled.recall.value > 0.4  # measured 0.51
        assert pooled.precision.value > 0.7  # measured 0.81
    finally:
        db.close()


def test_wilson_interval():
    rate = truth.wilson(8, 10)
    assert rate.value == 0.8 and rate.low == pytest.approx(0.490, abs=1e-3) and rate.high == pytest.approx(0.943, abs=1e-3)
    assert truth.wilson(0, 0).value is None
    assert np.isclose(truth.wilson(10, 10).high, 1.0)
