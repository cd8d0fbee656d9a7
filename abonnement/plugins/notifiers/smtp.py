"""The ``smtp`` notifier: e-mail through an SMTP server (stdlib ``smtplib``), over implicit
TLS (``ssl: true``, or port 465) or STARTTLS, with an optional login. The password comes from
the environment (``ABONNEMENT_SMTP_PASSWORD``), never from the config, and is only ever sent
over TLS: a login without it needs ``allow_insecure_auth: true`` written on purpose."""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from email.utils import make_msgid
from typing import Any

from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Message, Notifier, Registry

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The smtp notifier: the server messages are sent through.",
    "properties": {
        "host": {"type": "string", "minLength": 1, "default": "localhost"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 25},
        "starttls": {"type": "boolean", "default": False},
        "ssl": {
            "type": "boolean",
            "default": False,
            "description": "Implicit TLS from the first byte (SMTPS); the default on port 465.",
        },
        "allow_insecure_auth": {
            "type": "boolean",
            "default": False,
            "description": "Log in without TLS (the password crosses the network in the clear).",
        },
        "username": {
            "type": "string",
            "description": "Log in as; the password is read from ABONNEMENT_SMTP_PASSWORD.",
        },
        "sender": {"type": "string", "default": "billing@localhost"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10},
    },
}


IMPLICIT_TLS_PORT = 465


class SmtpNotifier(Notifier):
    name = "smtp"

    @classmethod
    def problems(cls, settings: Mapping[str, Any]) -> list[str]:
        if settings.get("username") and not (
            _implicit_tls(settings) or settings.get("starttls")
            or settings.get("allow_insecure_auth")
        ):  # fmt: skip
            return [
                f"logging in as {settings['username']!r} without TLS would send the password "
                "in the clear; set `starttls: true`, `ssl: true` (port 465), or "
                "`allow_insecure_auth: true` if you mean it"
            ]
        return []

    def send(self, message: Message) -> None:
        s = self.settings
        email = message.as_email()
        email["From"] = s.get("sender", "billing@localhost")
        # the same key gives the same Message-ID: a receiver can drop a redelivered duplicate
        if message.key:
            safe = "".join(ch if ch.isalnum() else "." for ch in message.key)
            email["Message-ID"] = f"<{safe}@abonnement>"
        else:
            email["Message-ID"] = make_msgid(domain="abonnement")
        host, port = s.get("host", "localhost"), int(s.get("port", 25))
        timeout = float(s.get("timeout", 10))
        server: smtplib.SMTP
        if _implicit_tls(s):
            context = ssl.create_default_context()
            server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        with server:
            if s.get("starttls") and not _implicit_tls(s):
                server.starttls(context=ssl.create_default_context())
            if s.get("username"):
                server.login(s["username"], os.environ.get("ABONNEMENT_SMTP_PASSWORD", ""))
            server.send_message(email)


def _implicit_tls(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("ssl")) or int(settings.get("port", 25)) == IMPLICIT_TLS_PORT


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(SmtpNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.smtp": SETTINGS_SCHEMA}
