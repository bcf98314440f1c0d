import functools
import os
from pathlib import Path

import pytest

from backend.database import DEFAULT_DB_PATH
from tests import helpers


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory):
    return helpers.build_tiny_database(tmp_path_factory.mktemp("appdb"))


@pytest.fixture()
def app_env(tiny_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(tiny_db))
    return tiny_db


@pytest.fixture(scope="session", autouse=True)
def release_cached_connections():
    """Close the app's cached DuckDB connections before interpreter exit (else duckdb's bindings
    report leaked objects at shutdown)."""
    yield
    import gc

    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    gc.collect()


@pytest.fixture(scope="session", autouse=True)
def scan_component_manifests_once():
    """The first run of every AppTest scans the metadata of every installed distribution for
    Streamlit v2 components: about 0.15 s of a 0.2 s render here. The installed packages do not change
    during a session, so the scan runs once (a streamlit without that scanner is left as it is)."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manifest_scanner, "scan_component_manifests",
                      functools.cache(manifest_scanner.scan_component_manifests))
        yield


@pytest.fixture(scope="session")
def sweep_db(tmp_path_factory):
    return helpers.build_sweep_database(tmp_path_factory.mktemp("sweepdb"), second_task=True)


@pytest.fixture()
def sweep_env(sweep_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(sweep_db))
    return sweep_db


@pytest.fixture(params=["demo", "sweep"])
def named_db(request, monkeypatch) -> tuple[str, Path]:
    """Each of the two test databases in turn, as (name, path), set as $EXPLORER_DB: the shipped demo
    (or $EXPLORER_DB when set, as in test_absorption_pages.py) and the sweep test database."""
    if request.param == "demo":
        path = Path(os.environ.get("EXPLORER_DB") or DEFAULT_DB_PATH)
    else:
        path = request.getfixturevalue("sweep_db")
    monkeypatch.setenv("EXPLORER_DB", str(path))
    return request.param, path
