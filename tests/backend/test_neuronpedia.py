"""Neuronpedia links from sae-lens's pretrained_saes.yaml, read without importing sae-lens."""

from __future__ import annotations

import pytest

from backend import neuronpedia

YAML = """\
other-release:
  repo_id: someone/other
  saes:
  - id: blocks.0.hook_resid_pre
    neuronpedia: other/0-res
gpt2-small-res-jb:
  conversion_func: null
  model: gpt2-small
  repo_id: jbloom/GPT2-Small-SAEs-Reformatted
  saes:
  - id: blocks.0.hook_resid_pre
    l0: 10.0
    neuronpedia: gpt2-small/0-res-jb
    path: blocks.0.hook_resid_pre

  - id: blocks.1.hook_resid_pre
    path: blocks.1.hook_resid_pre
last-release:
  saes: []
"""


def test_release_block_is_the_release_key_and_its_indented_lines():
    block = neuronpedia.release_block(YAML, "gpt2-small-res-jb")
    assert block.splitlines()[0] == "gpt2-small-res-jb:"
    assert "other/0-res" not in block and "last-release" not in block
    assert block.rstrip().endswith("path: blocks.1.hook_resid_pre"), "a blank line inside the block does not end it"
    assert neuronpedia.release_block(YAML, "gpt2-small") is None, "whole keys only"


def test_feature_url_from_the_installed_yaml():
    pytest.importorskip("yaml")
    if neuronpedia.sae_lens_yaml() is None:
        pytest.skip("sae-lens is not installed")
    assert (neuronpedia.feature_url("gpt2-small-res-jb", "blocks.0.hook_resid_pre", 123)
            == "https://www.neuronpedia.org/gpt2-small/0-res-jb/123")
    assert (neuronpedia.feature_url("gemma-scope-2b-pt-res-canonical", "layer_3/width_16k/canonical", 7)
            == "https://www.neuronpedia.org/gemma-2-2b/3-gemmascope-res-16k/7")


def test_no_link_for_unknown_or_local_saes():
    assert neuronpedia.feature_url("no-such-release", "blocks.0.hook_resid_pre", 1) is None
    assert neuronpedia.feature_url("gpt2-small-res-jb", "no-such-id", 1) is None
    assert neuronpedia.feature_url(None, None, 1) is None


def test_no_link_without_sae_lens(monkeypatch):
    monkeypatch.setattr(neuronpedia, "sae_lens_yaml", lambda: None)
    neuronpedia.release_neuronpedia_ids.cache_clear()
    try:
        assert neuronpedia.feature_url("gpt2-small-res-jb", "blocks.0.hook_resid_pre", 1) is None
    finally:
        neuronpedia.release_neuronpedia_ids.cache_clear()
