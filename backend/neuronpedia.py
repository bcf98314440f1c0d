"""Neuronpedia feature links for sae-lens release SAEs, derived at render time (nothing stored in the database).

sae-lens's `pretrained_saes.yaml` names each release SAE's Neuronpedia id (`neuronpedia: gpt2-small/0-res-jb`).
The explorer does not need sae-lens (no torch): the yaml is found without importing the package, and only
the release's own block of it is parsed (the file has tens of thousands of lines). Without sae-lens or
PyYAML there is simply no link.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

NEURONPEDIA_URL = "https://www.neuronpedia.org"


def sae_lens_yaml() -> Path | None:
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained_saes.yaml"
    return path if path.exists() else None


def release_block(text: str, release: str) -> str | None:
    """The yaml text of one top-level release entry: its key line and the indented lines under it."""
    lines = text.splitlines()
    try:
        start = lines.index(f"{release}:")
    except ValueError:
        return None
    end = start + 1
    while end < len(lines) and (not lines[end] or lines[end][0] in " -#"):
        end += 1
    return "\n".join(lines[start:end])


@cache
def release_neuronpedia_ids(release: str) -> dict[str, str]:
    """sae_id -> Neuronpedia id for a sae-lens release; {} when unknown or sae-lens/PyYAML are missing."""
    path = sae_lens_yaml()
    if path is None:
        return {}
    try:
        import yaml
    except ImportError:
        return {}
    block = release_block(path.read_text(encoding="utf-8"), release)
    if block is None:
        return {}
    entry = (yaml.safe_load(block) or {}).get(release) or {}
    return {str(sae["id"]): str(sae["neuronpedia"]) for sae in entry.get("saes", []) if sae.get("neuronpedia")}


def neuronpedia_id(release: str | None, sae_id: str | None) -> str | None:
    if not release or not sae_id:
        return None
    return release_neuronpedia_ids(release).get(sae_id)


def feature_url(release: str | None, sae_id: str | None, latent: int) -> str | None:
    """The latent's Neuronpedia page, e.g. https://www.neuronpedia.org/gpt2-small/0-res-jb/123."""
    np_id = neuronpedia_id(release, sae_id)
    return f"{NEURONPEDIA_URL}/{np_id}/{latent}" if np_id else None
