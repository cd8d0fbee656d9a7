"""The ``webhook`` notifier: each rendered message as a JSON POST, signed with Standard Webhooks.

Signed like every outgoing webhook (``signing.py``): ``webhook-id`` is the message key (the same
on a retry, so a receiver drops a duplicate), ``webhook-timestamp`` and ``webhook-signature``
made with ``ABONNEMENT_WEBHOOK_SIGNING_SECRET``. Nothing goes out unsigned: without the secret
``validate`` reports an error and the notifier refuses to start. A 5xx answer or a timeout is
retried a few times at once, then left to the outbox (the next run, with backoff).

A message's attachments (an invoice's PDF) are never embedded: its text carries the pay link.
For one POST per domain event rather than per message, see ``settings.webhooks``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from abonnement import signing
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


class WebhookNotifier(Notifier):
    name = "webhook"

    def __init__(self, settings: Mapping[str, Any]):
        super().__init__(settings)
        self._secret = signing.signing_secret()  # no unsigned message: PluginError without it

    def __repr__(self) -> str:  # never the secret
        return f"<WebhookNotifier {self.settings.get('url')!r}>"

    def send(self, message: Message) -> None:
        body = json.dumps({
            "key": message.key, "template": message.kind, "to": list(message.to),
            "subject": message.subject, "text": message.text, **message.data,
        }, sort_keys=True, default=str).encode()  # fmt: skip
        signing.post(self.settings["url"], body, message.key, self._secret,
                     timeout=float(self.settings.get("timeout", 5)),
                     retries=int(self.settings.get("retries", 2)))  # fmt: skip


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(WebhookNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.webhook": SETTINGS_SCHEMA}
