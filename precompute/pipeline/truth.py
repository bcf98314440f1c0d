"""The toy run's ground truth in the database (truth_features, truth_words, truth_latents): written by a build on
the toy model, after its dashboards, for every SAE of the build (a few thousand numbers: cheap to rewrite)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from contract.rows import TruthFeatureRow, TruthWordRow, arrow_table
from precompute.loading.sae import SAESpec, load_sae
from precompute.storage import writer as db
from precompute.toy.hierarchy import TOY_MODEL_NAME, features, load_toy_tokenizer, load_toy_weights, words_by_text

DELETE_MODEL_TRUTH = ("DELETE FROM truth_features WHERE model_name = ?", "DELETE FROM truth_words WHERE model_name = ?")


def features_table(model_name: str) -> pa.Table:
    return arrow_table([TruthFeatureRow(model_name=model_name, feature=f.index, name=f.name, role=f.role, parent=f.parent)
                        for f in features()], TruthFeatureRow)


def words_table(model_name: str, tokenizer) -> pa.Table:
    table = words_by_text()
    rows = []
    for token_id in range(len(tokenizer)):
        word = table.get(tokenizer.decode([token_id]))
        if word is not None:
            rows.append(TruthWordRow(model_name=model_name, token_id=token_id, parent=word.parent, child=word.child,
                                     filler=word.filler, absorbable=word.absorbable))
    return arrow_table(rows, TruthWordRow)


def latent_truth(W_dec: np.ndarray, directions: np.ndarray) -> dict[str, np.ndarray]:
    """Per latent: the feature its decoder row is closest to, the closest child and that child's parent, each
    with its cosine. A child latent whose decoder also points along the parent has absorbed it."""
    unit = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    cos = unit(W_dec) @ unit(directions).T  # [d_sae, n_features]
    feats = features()
    children = np.array([f.index for f in feats if f.role == "child"])
    parent_of = {f.index: next(p.index for p in feats if p.role == "parent" and p.name == f.parent)
                 for f in feats if f.role == "child"}
    best = cos.argmax(axis=1)
    child = children[cos[:, children].argmax(axis=1)]
    parent = np.array([parent_of[int(c)] for c in child])
    rows = np.arange(len(cos))
    return {"feature": best, "feature_cos": cos[rows, best], "child": child, "child_cos": cos[rows, child],
            "parent": parent, "parent_cos": cos[rows, parent]}


def latents_table(key: str, truth: dict[str, np.ndarray]) -> pa.Table:
    rounded = lambda v: pa.array(np.round(v, 3).astype(np.float32))  # noqa: E731
    return pa.table({"sae_key": [key] * len(truth["feature"]),
                     "latent": pa.array(np.arange(len(truth["feature"])), pa.int32()),
                     "feature": pa.array(truth["feature"], pa.int32()), "feature_cos": rounded(truth["feature_cos"]),
                     "child": pa.array(truth["child"], pa.int32()), "child_cos": rounded(truth["child_cos"]),
                     "parent": pa.array(truth["parent"], pa.int32()), "parent_cos": rounded(truth["parent_cos"])})


def run_truth_stage(con: duckdb.DuckDBPyConnection, specs: list[SAESpec], model_name: str, log=print) -> None:
    """The toy's features and words, and each SAE's latent matches, in one transaction (a no-op for other models)."""
    if model_name != TOY_MODEL_NAME:
        return
    directions = load_toy_weights()["feature_directions"].numpy()
    con.execute("BEGIN TRANSACTION")
    for statement in DELETE_MODEL_TRUTH:
        con.execute(statement, [model_name])
    db.insert_arrow(con, "truth_features", features_table(model_name))
    db.insert_arrow(con, "truth_words", words_table(model_name, load_toy_tokenizer()))
    for spec in specs:
        W_dec = load_sae(spec).W_dec.detach().float().numpy()
        con.execute(db.DELETE_SAE_ROWS["truth_latents"], [spec.key])
        db.insert_arrow(con, "truth_latents", latents_table(spec.key, latent_truth(W_dec, directions)))
    con.execute("COMMIT")
    log(f"ground truth: {len(features())} toy features, {len(specs)} SAE(s) matched to them")
