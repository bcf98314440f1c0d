"""Corpus preparation: deterministic rows of fixed length from local text."""

from __future__ import annotations

import numpy as np

from precompute.loading.corpus import CorpusConfig, build_corpus, load_corpus_rows
from precompute.loading.model import load_tokenizer


def test_local_text_becomes_shuffled_fixed_length_rows(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(200)))
    tokenizer = load_tokenizer()
    config = CorpusConfig(sources=(str(text),), context_size=16, seed=3)
    first = load_corpus_rows(build_corpus(tokenizer, config, tmp_path / "a.parquet"))
    second = load_corpus_rows(build_corpus(tokenizer, config, tmp_path / "b.parquet"))
    assert first.shape[1] == 16 and first.shape[0] > 50
    assert np.array_equal(first, second), "same inputs, same rows"
    assert (first == 0).sum() >= 150, "documents are joined by SmolLM2's <|endoftext|> (id 0)"
    text_back = tokenizer.decode(first.ravel().tolist())
    assert text_back.count("quick brown fox") >= 150, "rows hold the text, shuffled as whole rows"


def test_max_tokens_caps_the_corpus(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n\n".join("word " * 50 for _ in range(100)))
    rows = load_corpus_rows(build_corpus(load_tokenizer(), CorpusConfig(sources=(str(text),), context_size=32,
                                                                         max_tokens=320), tmp_path / "c.parquet"))
    assert rows.shape == (10, 32)
