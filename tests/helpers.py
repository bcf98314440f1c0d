"""Tiny builders for tests: a random HookedTransformer whose residual stream is exactly its token
embedding, and an SAE with a planted latent that fires on one known token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

D_MODEL = 16
D_VOCAB = 60
N_CTX = 32
PLANTED_TOKEN = 7
PLANTED_LATENT = 3
DEAD_LATENT = 5  # never fires (encoder reads nothing, negative bias)
PLANTED_DIRECTION = 0  # residual dimension that only the planted token writes to
HOOK = "blocks.1.hook_resid_post"


def tiny_model(seed: int = 0) -> HookedTransformer:
    """2-layer model with zeroed attention/MLP outputs, so resid_post == embed + pos_embed."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=D_MODEL, n_ctx=N_CTX, d_head=4, n_heads=4, d_mlp=32,
        d_vocab=D_VOCAB, act_fn="relu", normalization_type="LN", seed=seed, device="cpu",
    )
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
        model.W_E[:, PLANTED_DIRECTION] = 0.0
        model.W_E[PLANTED_TOKEN, PLANTED_DIRECTION] = 10.0
        model.W_pos[:, PLANTED_DIRECTION] = 0.0
    return model


def planted_sae_folder(root: Path, d_sae: int = 8, seed: int = 0) -> Path:
    """A standard (ReLU) sae-lens SAE saved in its folder format; latent PLANTED_LATENT reads only
    the planted direction (fires with activation 5.0 on PLANTED_TOKEN, never elsewhere)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=d_sae, dtype="float32", device="cpu")
    cfg.metadata.hook_name = HOOK
    cfg.metadata.model_name = "tiny"
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_MODEL, d_sae) * 0.3)
        sae.W_enc[PLANTED_DIRECTION, :] = 0.0
        sae.b_enc.fill_(-0.2)
        sae.W_enc[:, PLANTED_LATENT] = 0.0
        sae.W_enc[PLANTED_DIRECTION, PLANTED_LATENT] = 1.0
        sae.b_enc[PLANTED_LATENT] = -5.0
        sae.W_enc[:, DEAD_LATENT] = 0.0
        sae.b_enc[DEAD_LATENT] = -1.0
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, D_MODEL), dim=-1))
        sae.b_dec.zero_()
    folder = root / "planted-sae"
    sae.save_model(str(folder))
    return folder


def random_corpus(path: Path, n_rows: int, seq_len: int = N_CTX, planted_rate: float = 0.05, seed: int = 0) -> np.ndarray:
    """Rows of random tokens where PLANTED_TOKEN appears with a known rate; written as corpus Parquet."""
    rng = np.random.default_rng(seed)
    others = np.array([t for t in range(D_VOCAB) if t != PLANTED_TOKEN])
    rows = rng.choice(others, size=(n_rows, seq_len))
    planted = rng.random((n_rows, seq_len)) < planted_rate
    rows[planted] = PLANTED_TOKEN
    rows = rows.astype(np.int32)
    pq.write_table(pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))}), path)
    return rows


class FakeTokenizer:
    """Decodes token i as 't<i>' so vocab rows are predictable."""

    def decode(self, ids: list[int]) -> str:
        return "".join(f" t{i}" for i in ids)


def build_tiny_database(root: Path, n_rows: int = 64, keys: tuple[str, ...] = ("planted", "second")) -> Path:
    """A complete explorer database from the tiny model and the planted SAE."""
    from precompute.dashboards import DashboardConfig
    from precompute.job import JobConfig, run_job
    from precompute.sae_loading import SAESpec

    corpus = root / "corpus.parquet"
    random_corpus(corpus, n_rows)
    folder = planted_sae_folder(root)
    db_path = root / "explorer.duckdb"
    config = JobConfig(model_name="tiny", corpus_path=corpus, corpus_rows=(0, n_rows), db_path=db_path,
                       dashboard=DashboardConfig(batch_size=16, n_top=20, context_left=4, context_right=2), absorption=None)
    run_job([SAESpec(key=key, path=folder) for key in keys], config, model=tiny_model(), tokenizer=FakeTokenizer(),
            log=lambda *_: None)
    return db_path
