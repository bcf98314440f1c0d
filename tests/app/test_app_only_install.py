"""The README's first command installs only requirements-app.txt: every page renders there, /live says which
command installs the model packages (it used to show `ModuleNotFoundError: scipy` and a traceback), and no other
page imports a model package. Rendered for real in .venv-app, the venv scripts/test.sh makes with
`VENV=.venv-app bash scripts/setup.sh app`, not by hiding packages from this venv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_VENV_PYTHON = REPO / ".venv-app" / "bin" / "python"


def require_app_venv() -> None:
    if not APP_VENV_PYTHON.exists():
        if os.environ.get("EXPLORER_CI"):
            pytest.fail(f"{APP_VENV_PYTHON} is missing: scripts/test.sh makes it")
        pytest.skip("no .venv-app here: `VENV=.venv-app bash scripts/setup.sh app` makes it (scripts/test.sh does)")


@pytest.fixture(scope="module")
def app_only_render() -> dict:
    require_app_venv()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("EXPLORER_DB", None)  # the shipped demo, as the README's first command serves it
    done = subprocess.run([str(APP_VENV_PYTHON), str(REPO / "tests" / "app" / "app_only_render.py")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_app_only_venv_lacks_the_model_packages():
    require_app_venv()
    probe = subprocess.run([str(APP_VENV_PYTHON), "-c", "import importlib.util as u; "
                            "print([m for m in ('torch', 'scipy', 'sae_lens') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # else this file would test nothing


def test_every_page_renders_with_the_explorers_packages_only(app_only_render: dict):
    for page in app_only_render["pages"]:
        assert not page["exception"], page
        if page["page"] != "live":
            assert not page["errors"], page


def test_live_names_the_install_command_instead_of_a_traceback(app_only_render: dict):
    live = next(page for page in app_only_render["pages"] if page["page"] == "live")
    assert len(live["errors"]) == 1 and "bash scripts/setup.sh all" in live["errors"][0]
    assert "Traceback" not in live["errors"][0] and "ModuleNotFoundError" not in live["errors"][0]


def test_no_page_but_live_imports_the_precompute_or_a_model_package(app_only_render: dict):
    """In this venv a model package cannot be imported at all (a page importing one fails above); the precompute can
    (it is in the repository), and no page may."""
    assert app_only_render["imported_by_other_pages"] == []
    assert app_only_render["imported_in_all"] == []
