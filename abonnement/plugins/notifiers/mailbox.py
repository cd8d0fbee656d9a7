"""The ``mailbox`` notifier: each message becomes an ``.eml`` file in a folder (the default)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from abonnement.config.paths import escapes
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Message, Notifier, Registry
from abonnement.private_files import PRIVATE

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
        self.send_many([message])

    def send_many(self, messages: Sequence[Message]) -> Iterator[Exception | None]:
        """Each message a file, then one flush to disk for all of them (also when the batch
        is interrupted): a file the outbox records as sent is on disk."""
        # relative to the config directory, like every path in the config
        directory = os.path.join(
            self.settings.get("config_dir", "."), self.settings.get("directory", "outbox")
        )
        made = False
        suffix = f".{os.getpid()}.tmp"
        try:
            for message in messages:
                try:
                    if not made:
                        os.makedirs(directory, exist_ok=True)
                        made = True
                    data = eml(message)
                    key = message.key or hashlib.sha256(data).hexdigest()
                    name = _file_name(key)
                    _write(directory, name, suffix, data)
                except Exception as exc:  # a full disk, a bad path: this one is retried
                    yield exc
                else:
                    yield None
        finally:
            if made:
                os.sync()


# what a file name keeps of an ASCII message key (the rest becomes "_")
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.]")


def _file_name(key: str) -> str:
    """The ``.eml`` file of message ``key``: letters, digits, ``-_.`` kept, the rest ``_``."""
    if key.isascii():
        return _UNSAFE.sub("_", key) + ".eml"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key) + ".eml"


def _write(directory: str, name: str, suffix: str, data: bytes) -> None:
    """``data`` as ``directory/name``, whole or not at all (a temporary file renamed into
    place), readable by its owner only: names, addresses, amounts and update links inside.
    ``private_files.write_private`` without its flush to disk (``send_many`` flushes once)
    and in plain ``os`` calls: a run writes tens of thousands of these."""
    temporary = os.path.join(directory, f".{name}{suffix}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# a header value written as it is: printable ASCII (longer ones are folded at spaces)
_PLAIN_HEADER = re.compile(r"[\x20-\x7e]{0,900}")
_LONG_LINE = re.compile(rb"[^\n]{999}")  # 998 octets a line at most (RFC 5322 2.1.1)


def eml(message: Message) -> bytes:
    """``message`` as the bytes of an ``.eml`` file: what ``message.as_email().as_bytes()``
    gives (a reader sees the same headers and parts), written directly for printable ASCII
    headers and unencoded parts (the ``email`` package's header machinery costs about a
    millisecond a message), through the ``email`` package otherwise (and always for a
    message with attachments)."""
    if message.attachments:
        return message.as_email().as_bytes()
    to = ", ".join(message.to)
    if not (_PLAIN_HEADER.fullmatch(to) and _PLAIN_HEADER.fullmatch(message.subject)):
        return message.as_email().as_bytes()
    parts = [_part("plain", message.text)]
    if message.html:
        parts.append(_part("html", message.html))
    if any(part is None for part in parts):
        return message.as_email().as_bytes()
    head = (_folded("To", to) + _folded("Subject", message.subject)).encode("ascii")
    if len(parts) == 1:
        return head + b"MIME-Version: 1.0\n" + parts[0]  # type: ignore[operator]
    body = b"".join(parts)  # type: ignore[arg-type]
    boundary = "===============" + hashlib.sha256(body).hexdigest()[:19] + "=="
    mark = f"--{boundary}\n".encode()
    kind = f'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="{boundary}"\n\n'
    return (
        head
        + kind.encode()
        # the line break before a boundary belongs to the boundary, not to the part
        + b"".join(mark + part + b"\n" for part in parts)  # type: ignore[operator]
        + f"--{boundary}--\n".encode()
    )


def _folded(name: str, value: str) -> str:
    """``name: value`` as header lines of at most 78 characters where spaces allow (RFC 5322
    2.2.3: a line break goes before a space, so unfolding gives ``value`` back exactly).
    Runs of spaces are not folded (a line of only spaces is not allowed): the value then
    stays on one line, within the 998 characters a line may have."""
    words = value.split(" ")
    if "" in words[1:]:
        return f"{name}: {value}\n"
    lines = [f"{name}: {words[0]}"]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= 78:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return "\n".join(lines) + "\n"


def _part(subtype: str, text: str) -> bytes | None:
    """One text part with its headers (7bit for ASCII, 8bit UTF-8 otherwise), or None when a
    line is too long to go unencoded, in octets (the ``email`` package then writes the
    message, base64)."""
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    if b"\r" in data or _LONG_LINE.search(data):
        return None
    encoding = "7bit" if data.isascii() else "8bit"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\n'
        f"Content-Transfer-Encoding: {encoding}\n\n".encode()
        + data
    )


@hookimpl
def abonnement_register_notifiers(register: Registry) -> None:
    register(MailboxNotifier)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"notifications.mailbox": SETTINGS_SCHEMA}
