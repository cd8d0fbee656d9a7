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


def test_serve_with_two_workers_answers_from_the_factory(tmp_path):
    """``serve --workers 2`` hands the project to uvicorn's worker processes through the
    environment; both build the app from the same config."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    config = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(config)]).exit_code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ABONNEMENT_LINK_SECRET": "s" * 32}
    server = subprocess.Popen(
        [sys.executable, "-m", "abonnement", "--config", str(config), "serve", "--port",
         str(port), "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/l/coffee-monthly").status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
