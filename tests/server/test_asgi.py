"""The app factory an ASGI server runs by hand (``uvicorn --factory abonnement.server.asgi:app``,
as the Dockerfile and the load benchmark do): the project comes from the environment."""

from click.testing import CliRunner
from fastapi.testclient import TestClient

from abonnement.cli import cli


def test_factory_serves_the_project_the_environment_names(tmp_path, monkeypatch):
    config = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(config)]).exit_code == 0
    monkeypatch.setenv("ABONNEMENT_CONFIG", str(config))
    monkeypatch.delenv("ABONNEMENT_DATABASE_URL", raising=False)  # the default SQLite file
    monkeypatch.setenv("ABONNEMENT_LINK_SECRET", "s" * 32)
    from abonnement.server import asgi

    with TestClient(asgi.app()) as client:
        page = client.get("/l/coffee-monthly")
        assert page.status_code == 200
        assert "1 KG monthly coffee bean subscription" in page.text
        assert client.get("/l/no-such-link").status_code == 404
