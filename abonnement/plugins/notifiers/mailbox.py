"""The ``mailbox`` notifier: each message becomes an ``.eml`` file in a folder (the default)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from abonnement.config.paths import escapes
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Message, Notifier, Registry
from abonnement.private_files import write_private

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The mailbox notifier: where `.eml` files are written.",
    "properties": {
        "directory": {"type": "string", "minLength": 1, "default": "outbox"},
    },
}


class MailboxNotifier(Notifier):
    name = "mailbox"

    @classmethod
    def problems(cls, settings: Mapping[str, Any]) -> list[str]:
        directory = str(settings.get("directory", "outbox"))
        if not Path(directory).is_absolute() and escapes(directory):
            return [
                f"`directory: {directory}` reaches outside the config directory; relative "
                "paths stay inside it, write an absolute path if you mean it"
            ]
        return []

    def send(self, message: Message) -> None:
        # relative to the config directory, like every path in the config
        directory = Path(self.settings.get("config_dir", ".")) / self.settings.get(
            "directory", "outbox"
        )
        directory.mkdir(parents=True, exist_ok=True)
        data = message.as_email().as_bytes()
        key = message.key or hashlib.sha256(data).hexdigest()
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
        # readable by its owner only: names, addresses, amounts (and update links) inside
        write_private(directory / f"{safe}.eml", data)


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(MailboxNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.mailbox": SETTINGS_SCHEMA}
