import pytest

from tests import helpers


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory):
    return helpers.build_tiny_database(tmp_path_factory.mktemp("appdb"))


@pytest.fixture()
def app_env(tiny_db, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(tiny_db))
    return tiny_db
