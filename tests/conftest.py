import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from abonnement.cli import cli

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "examples" / "spec"


def run(*args: str, env: dict | None = None) -> Result:
    """Run the CLI in-process; a crash (not a clean exit) fails the test with its traceback."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_json(*args: str) -> object:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def spec_config(tmp_path: Path) -> Path:
    """A writable copy of the spec's full config example."""
    target = tmp_path / "config"
    shutil.copytree(SPEC, target)
    return target


PG_URL = os.environ.get("ABONNEMENT_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path):
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'abonnement.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need ABONNEMENT_TEST_DATABASE_URL (CI sets it)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    from abonnement.plugins.storage.sql import SqlStorage

    SqlStorage(url, migrate=False).upgrade()
    yield url
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd): its port, and what it receives as
    ``(recipients, message bytes)``."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()
