"""The ``smtp`` notifier: e-mail through an SMTP server (stdlib ``smtplib``), with optional
STARTTLS and login. The password comes from the environment, never from the config."""

from __future__ import annotations

import os
import smtplib
from email.utils import make_msgid

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
        "username": {
            "type": "string",
            "description": "Log in as; the password is read from ABONNEMENT_SMTP_PASSWORD.",
        },
        "sender": {"type": "string", "default": "billing@localhost"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10},
    },
}


class SmtpNotifier(Notifier):
    name = "smtp"

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
        with smtplib.SMTP(s.get("host", "localhost"), int(s.get("port", 25)),
                          timeout=float(s.get("timeout", 10))) as server:  # fmt: skip
            if s.get("starttls"):
                server.starttls()
            if s.get("username"):
                server.login(s["username"], os.environ.get("ABONNEMENT_SMTP_PASSWORD", ""))
            server.send_message(email)


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(SmtpNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.smtp": SETTINGS_SCHEMA}
