import pytest

from tests.server.shop import Shop


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """The spec's shop served on SQLite (the PostgreSQL tests ask for ``pg_shop``)."""
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch)
    yield s
    s.close()


@pytest.fixture
def any_shop(tmp_path, monkeypatch, db_url):
    """The spec's shop on SQLite and on PostgreSQL."""
    s = Shop(tmp_path, db_url, monkeypatch)
    yield s
    s.close()
