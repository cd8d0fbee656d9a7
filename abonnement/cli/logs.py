"""The audit trail of a command: the ``abonnement`` loggers, on standard error.

The operations log what they do through module loggers (``abonnement.operations.billing``:
invoices issued, charges, deliveries, failures); the library itself configures nothing (a
Python caller's logging setup decides). The command line does: INFO and up by default, WARNING
and up with ``-q``, DEBUG with ``-v``; as text lines, or with ``--log-format json`` one JSON
object per line (``time``, ``level``, ``logger``, ``message`` and the record's own fields), so
a cron job or a log shipper keeps what every run did.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["LOGGER", "configure"]

LOGGER = "abonnement"

# attributes every LogRecord has: what is left are the fields a call passed in ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}  # fmt: skip


class _Stderr(logging.Handler):
    """Writes through ``click.echo(err=True)``: the standard error of the moment (a test
    runner swaps it per invocation), never a stream captured when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        from abonnement.cli.progress import clear_line

        try:
            clear_line()  # a progress bar being drawn: the line is the log's
            click.echo(self.format(record), err=True)
        except Exception:  # a broken stderr must not stop a billing run
            self.handleError(record)


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        text = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(verbosity: int, fmt: str) -> None:
    """Send the ``abonnement`` loggers to standard error for this command: ``verbosity`` −1
    (``-q``: warnings and errors), 0 (INFO, the default) or ≥ 1 (``-v``: DEBUG); ``fmt``
    ``text`` or ``json``. Replaces what an earlier call set up (one process may run several
    commands: tests do)."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _Stderr)]:
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(_Json() if fmt == "json" else _Text())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity else
                    logging.INFO)  # fmt: skip
