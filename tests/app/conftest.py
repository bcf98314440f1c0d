import pytest

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


@pytest.fixture(scope="session")
def sweep_db(tmp_path_factory):
    return helpers.build_sweep_database(tmp_path_factory.mktemp("sweepdb"))


@pytest.fixture()
def sweep_env(sweep_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(sweep_db))
    return sweep_db
