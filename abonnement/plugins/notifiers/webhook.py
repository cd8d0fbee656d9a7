"""The ``webhook`` notifier: each message as a JSON POST, signed with HMAC-SHA256.

``X-Abonnement-Signature: t=TIMESTAMP,v1=HEX`` where HEX is HMAC-SHA256 over
``TIMESTAMP.BODY`` with the secret from ``ABONNEMENT_WEBHOOK_SECRET``; a receiver checks it and
rejects old timestamps. Nothing goes out unsigned: without the secret the notifier refuses to
start. ``X-Abonnement-Delivery`` carries the message key for de-duplication.
A 5xx answer or a timeout is retried a few times at once, then left to the next run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from abonnement.errors import PluginError
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Message, Notifier, Registry

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "description": "The webhook notifier: where messages are POSTed as JSON.",
    "properties": {
        "url": {"type": "string", "pattern": "^https?://"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "retries": {"type": "integer", "minimum": 0, "maximum": 5, "default": 2},
    },
}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Abonnement-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


SECRET_VARIABLE = "ABONNEMENT_WEBHOOK_SECRET"


class WebhookNotifier(Notifier):
    name = "webhook"

    def __init__(self, settings: Mapping[str, Any]):
        super().__init__(settings)
        secret = os.environ.get(SECRET_VARIABLE)
        if not secret:  # a receiver could not tell our messages from anyone's
            raise PluginError(
                f"the webhook notifier signs every message: set {SECRET_VARIABLE} "
                "(the secret the receiver checks signatures with)"
            )
        self._secret = secret

    def __repr__(self) -> str:  # never the secret
        return f"<WebhookNotifier {self.settings.get('url')!r}>"

    def send(self, message: Message) -> None:
        body = json.dumps({
            "key": message.key, "template": message.kind, "to": list(message.to),
            "subject": message.subject, "text": message.text, **message.data,
        }, sort_keys=True, default=str).encode()  # fmt: skip
        retries = int(self.settings.get("retries", 2))
        for attempt in range(retries + 1):
            try:
                self._post(body, message.key)
                return
            except (urllib.error.URLError, TimeoutError) as exc:
                client_error = isinstance(exc, urllib.error.HTTPError) and exc.code < 500
                if client_error or attempt == retries:
                    raise
                time.sleep(0.2 * 2**attempt)

    def _post(self, body: bytes, key: str) -> None:
        # a real clock here, not the billing date: receivers reject stale signatures
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Abonnement-Delivery": key,
                   "User-Agent": "abonnement-webhook"}  # fmt: skip
        headers["X-Abonnement-Signature"] = signature(self._secret, timestamp, body)
        request = urllib.request.Request(self.settings["url"], body, headers, method="POST")
        with urllib.request.urlopen(request, timeout=float(self.settings.get("timeout", 5))):
            pass


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(WebhookNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.webhook": SETTINGS_SCHEMA}
