"""The ``console`` notifier: prints each message to standard error."""

from __future__ import annotations

import sys

from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Message, Notifier, Registry


class ConsoleNotifier(Notifier):
    name = "console"

    def send(self, message: Message) -> None:
        print(f"[{message.kind}] to {', '.join(message.to)}: {message.subject}", file=sys.stderr)


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(ConsoleNotifier)
