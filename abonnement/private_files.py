"""Files only their owner may read (mode 0600): databases, ledgers, mailboxes, secrets.

They hold customers' names and addresses, payment tokens and signing keys; the process umask
(often 022) would leave them readable by every user of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE", "create_private", "write_private"]

PRIVATE = 0o600


def create_private(path: Path | str) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if this call created it.
    An existing file is left as it is (its owner may have chosen its mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: Path | str, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` with mode 0600, whole or not at all (a temporary file moved
    into place). With ``replace=False`` an existing file wins, even one another process wrote
    a moment earlier, and False is returned; True when ``data`` is what the file holds now."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, target)
            return True
        try:
            os.link(temporary, target)  # atomic, and fails when the target exists
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)
