"""Run by test_app_only_install.py in a venv that holds only requirements-app.txt (.venv-app): renders every page
on the shipped demo database and prints, as JSON, what each page showed and which modules the process imported.
No pytest and no test helper here: the venv has neither."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamlit.testing.v1 import AppTest  # noqa: E402

from views.common import PAGE_FILES  # noqa: E402

# Modules only the precompute and the live page's model may bring in: no other page may import them.
MODEL_MODULES = ("torch", "scipy", "sklearn", "transformers", "transformer_lens", "sae_lens", "precompute", "gguf")
URLS = [("overview", {}), ("latent", {"sae": "smollm2-l6-topk-4k-k32", "latent": "3783"}),
        ("browse", {"sae": "smollm2-l6-topk-4k-k32"}), ("letter", {"sae": "smollm2-l6-topk-4k-k32", "letter": "s"}),
        ("token", {"token": "snake"}), ("compare", {}), ("live", {"sae": "smollm2-l6-topk-4k-k32", "text": "a snake"})]


def render(page: str, params: dict[str, str]) -> dict:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page(PAGE_FILES[page])
    at.query_params = params
    at.run()
    return {"page": page, "exception": [str(e.value) for e in at.exception],
            "errors": [str(e.value) for e in at.error], "titles": [str(t.value) for t in at.title]}


def imported(prefixes: tuple[str, ...]) -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in prefixes})


def main() -> None:
    results = []
    for page, params in URLS:
        if page == "live":  # what every other page imported, before the live page runs
            before_live = imported(MODEL_MODULES)
        results.append(render(page, params))
    assert set(PAGE_FILES) == {page for page, _ in URLS}, "a page is missing from URLS"
    print(json.dumps({"pages": results, "imported_by_other_pages": before_live,
                      "imported_in_all": imported(MODEL_MODULES)}))


if __name__ == "__main__":
    main()
