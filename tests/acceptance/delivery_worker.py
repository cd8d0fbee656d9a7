"""A process working the outbox, for the tests of concurrent delivery: every ``.eml`` the
mailbox writes is also counted in a shared log (``PID KEY`` per line, appended atomically).

``python -m tests.acceptance.delivery_worker CONFIG DB DAY LOG READY N``: open the project,
say so in folder READY, wait until N processes are ready, then deliver what is due on DAY a
few messages per claim."""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

from abonnement.app import App
from abonnement.operations import delivery
from abonnement.plugins.notifiers import mailbox


def counting(log: Path):
    """The mailbox's file writer, appending each file's name to ``log`` first."""
    write = mailbox._write

    def counted(directory, name, suffix, data):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {Path(name).stem}\n".encode())
        finally:
            os.close(fd)
        time.sleep(0.004)  # a real channel takes a while: the processes overlap
        return write(directory, name, suffix, data)

    return counted


def main(config: str, db: str, day: str, log: str, ready: str, n: str) -> None:
    mailbox._write = counting(Path(log))
    delivery.BATCH = 7
    ctx = App(Path(config), db).context
    assert ctx.storage is not None  # opened before the start line
    Path(ready, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(ready).iterdir())) < int(n) and time.monotonic() < deadline:
        time.sleep(0.01)
    delivery.deliver_due(ctx, date.fromisoformat(day))


if __name__ == "__main__":
    main(*sys.argv[1:])
