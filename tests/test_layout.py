"""The packages between each other, read from their import graph (ast, no import runs). `contract/` is what the
writer and the reader share and imports neither; `precompute/` (the only writer) and `backend/` (the read-only data
layer) both import it and never each other; `backend/` reaches no model package at all, not even lazily; `live/`
(inference on the server) is the only package the pages use to run the model, and only the Live page imports it at
load."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import ROOT, imports_of

PROJECT = ("contract", "backend", "precompute", "live", "views")
MODEL_PACKAGES = ("torch", "transformer_lens", "sae_lens", "transformers", "scipy", "sklearn", "gguf", "ray")
# Which project packages each may import (at any place in a file).
MAY_IMPORT = {
    "contract": set(),
    "precompute": {"contract"},
    "backend": {"contract"},
    "live": {"contract", "backend", "precompute"},
    "views": {"contract", "backend", "views", "live"},
}


def files_of(package: str) -> list[Path]:
    if package == "views":
        return [ROOT / "app.py", *sorted((ROOT / "views").rglob("*.py"))]
    return sorted((ROOT / package).rglob("*.py"))


def test_every_package_exists_and_has_imports():
    for package in PROJECT:
        assert files_of(package), package
    assert sum(len(imports_of(path)) for path in files_of("precompute")) > 100


def test_each_package_imports_only_the_packages_below_it():
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in files_of(package):
            wrong += [f"{imp} ({package}/ may import {sorted(allowed) or 'no project package'})"
                      for imp in imports_of(path) if imp.package in PROJECT and imp.package != package
                      and imp.package not in allowed]
    assert not wrong, "imports across the layers:\n" + "\n".join(wrong)


def test_no_import_between_precompute_and_backend_in_either_direction():
    edges = [str(imp) for side, other in (("precompute", "backend"), ("backend", "precompute"))
             for path in files_of(side) for imp in imports_of(path) if imp.package == other]
    assert not edges, "\n".join(edges)


def test_backend_and_contract_reach_no_model_package_even_lazily():
    wrong = [str(imp) for package in ("backend", "contract") for path in files_of(package)
             for imp in imports_of(path) if imp.package in MODEL_PACKAGES or imp.package == "streamlit"]
    assert not wrong, "backend/ and contract/ are torch-free and Streamlit-free:\n" + "\n".join(wrong)


def test_only_the_live_page_imports_the_live_package_at_load():
    loading = sorted({imp.path for path in files_of("views") for imp in imports_of(path)
                      if imp.package == "live" and imp.at_module_level})
    assert loading == ["views/live.py"], loading
    lazily = sorted({imp.path for path in files_of("views") for imp in imports_of(path)
                     if imp.package == "live" and not imp.at_module_level})
    assert lazily == ["views/token.py"], lazily  # its tokenizer, for a string that is not a vocabulary word
