"""Secrets stay secret: TLS before a password, no unsigned webhook, private files, and no secret
in the database, the JSON output or the logs after a run."""

import logging
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from abonnement.errors import PluginError
from abonnement.plugins.notifiers.smtp import SmtpNotifier
from abonnement.plugins.notifiers.webhook import WebhookNotifier
from tests.acceptance.receiver import SIGNING_SECRET
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.acceptance.test_notification_scenarios import MAILBOX
from tests.conftest import run

LINK_SECRET = "link-secret-0123456789-0123456789-abcdef"
SMTP_PASSWORD = "smtp-password-hunter2-4f9a"
WEBHOOK_SECRET = "webhook-secret-whsec-77c1d0"
SECRETS = {
    "ABONNEMENT_LINK_SECRET": LINK_SECRET,
    "ABONNEMENT_SMTP_PASSWORD": SMTP_PASSWORD,
    "ABONNEMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "ABONNEMENT_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET,
}


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"username": "billing"}, True),
        ({"username": "billing", "port": 587}, True),
        ({"username": "billing", "starttls": True}, False),
        ({"username": "billing", "ssl": True}, False),
        ({"username": "billing", "port": 465}, False),
        ({"username": "billing", "allow_insecure_auth": True}, False),
        ({}, False),  # no login, no password to leak
    ],
)
def test_smtp_logs_in_only_over_tls_unless_told_otherwise(settings, refused):
    problems = SmtpNotifier.problems(settings)
    assert bool(problems) is refused
    if refused:
        assert problems == [
            "logging in as 'billing' without TLS would send the password in the clear; set "
            "`starttls: true`, `ssl: true` (port 465), or `allow_insecure_auth: true` if you "
            "mean it"
        ]
        with pytest.raises(PluginError, match=r"^the smtp notifier: logging in as 'billing'"):
            SmtpNotifier(settings)


def test_smtp_on_port_465_speaks_tls_from_the_first_byte(monkeypatch):
    opened = []

    class Fake:
        def __init__(self, host, port, **kwargs):
            opened.append((type(self).__name__, port, "context" in kwargs))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def starttls(self, **kwargs):
            opened.append("starttls")

        def login(self, user, password):
            opened.append(("login", user))

        def send_message(self, message):
            pass

    class SMTP_SSL(Fake):
        pass

    class SMTP(Fake):
        pass

    from abonnement.plugins.interfaces import Message
    from abonnement.plugins.notifiers import smtp

    monkeypatch.setattr(smtp.smtplib, "SMTP_SSL", SMTP_SSL)
    monkeypatch.setattr(smtp.smtplib, "SMTP", SMTP)
    message = Message(to=("bob@example.com",), subject="Hi", text="Hello")
    SmtpNotifier({"username": "billing", "port": 465}).send(message)
    SmtpNotifier({"username": "billing", "starttls": True, "port": 587}).send(message)
    assert opened == [("SMTP_SSL", 465, True), ("login", "billing"),
                      ("SMTP", 587, False), "starttls", ("login", "billing")]  # fmt: skip


def test_validate_names_the_smtp_block_that_would_log_in_in_the_clear(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}",
                 replace={"notifiers: [mailbox]": "notifiers: [smtp]",
                          MAILBOX: "    smtp: {host: mail.example.com, username: billing}\n"})  # fmt: skip
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    text = (s.config / "abonnement.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.startswith("    smtp: {host"))
    assert f"abonnement.yaml:{line}:" in result.stderr
    assert "the smtp notifier: logging in as 'billing' without TLS" in result.stderr


def test_a_webhook_without_its_secret_stops_the_run_before_anyone_is_charged(tmp_path, monkeypatch):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={"notifiers: [mailbox]": "notifiers: [webhook]",
                          MAILBOX: "    webhook: {url: 'http://127.0.0.1:9/hook'}\n"})  # fmt: skip
    result = run("--config", str(s.config), "--db", s.db_url, "-q", "run", "--until",
                 "2026-12-01", env={"ABONNEMENT_WEBHOOK_SIGNING_SECRET": ""})  # fmt: skip
    assert result.exit_code == 1
    text = (s.config / "abonnement.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "notifiers: [webhook]" in t)
    column = text[line - 1].index("webhook]") + 1
    assert result.stderr.strip() == (  # -q: the error alone, at the notifier that signs
        f"{s.config / 'abonnement.yaml'}:{line}:{column}: error: outgoing webhooks are signed: "
        "set the environment variable ABONNEMENT_WEBHOOK_SIGNING_SECRET (signing is asked for in "
        "settings.notifications.notifiers[0]); make "
        "one with `python -c \"import base64, secrets; print('whsec_' + "
        'base64.b64encode(secrets.token_bytes(32)).decode())"` and give it to the receivers: '
        "they verify signatures with it\n1 error"
    )
    assert s.charges() == []
    monkeypatch.delenv("ABONNEMENT_WEBHOOK_SIGNING_SECRET", raising=False)
    with pytest.raises(
        PluginError,
        match=r"^outgoing webhooks are signed: set the environment variable ABONNEMENT_WEB",
    ):
        WebhookNotifier({"url": "http://127.0.0.1:9/hook"})


def test_databases_ledgers_mailboxes_and_secrets_are_created_private(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01", env={"ABONNEMENT_LINK_SECRET": ""})
    s.cli("run", "--until", "2026-12-01", env={"ABONNEMENT_LINK_SECRET": ""})
    mailbox = sorted((s.config / "outbox").glob("*.eml"))
    assert mailbox
    private = [tmp_path / "a.db", tmp_path / "a.db.link-secret", s.ledger, *mailbox]
    assert {str(p.name): _mode(p) for p in private} == {p.name: 0o600 for p in private}


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_no_secret_in_the_database_the_output_or_the_logs_after_a_run(tmp_path, caplog):
    controller = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult

    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == SMTP_PASSWORD.encode())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = controller.Controller(Handler(), hostname="127.0.0.1", port=port,
                                 authenticator=authenticate, auth_require_tls=False)  # fmt: skip
    smtp.start()
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hooks.server_address[1]}/hook"
    blocks = (f"    smtp: {{host: 127.0.0.1, port: {port}, username: billing, "
              "allow_insecure_auth: true}\n"
              f"    webhook: {{url: '{url}'}}\n")  # fmt: skip
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds"),
                          "notifiers: [mailbox]": "notifiers: [smtp, webhook]",
                          MAILBOX: blocks})  # fmt: skip
    caplog.set_level(logging.DEBUG)
    outputs = []
    try:
        for args in (("apply", "--as-of", "2026-12-01"), ("run", "--until", "2026-12-03"),
                     ("payment-methods", "update-link", "bob-coffee", "--as-of", "2026-12-03"),
                     ("subscriptions", "show", "bob-coffee"), ("payments", "list"),
                     ("plugins",)):  # fmt: skip
            result = run("--config", str(s.config), "--db", s.db_url, *args, "--json",
                         env=SECRETS)  # fmt: skip
            assert result.exit_code == 0, result.output + result.stderr
            outputs.append(result.stdout + result.stderr)
    finally:
        smtp.stop()
        hooks.shutdown()
    assert logins and set(logins) == {b"billing"}  # the password was sent, and accepted
    assert "http://localhost:8000/u/" in outputs[2]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    stored += s.ledger.read_bytes()
    logged = caplog.text + "".join(outputs)
    for secret in SECRETS.values():
        assert secret.encode() not in stored, secret
        assert secret not in logged, secret
