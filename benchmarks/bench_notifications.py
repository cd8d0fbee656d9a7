"""The price of notifications through the CLI: ``run --until`` with the coffee example's
notification settings (mailbox notifier, receipts, admin notices, reminders) against the same
run with notifications off, over N declared subscriptions.

Target (issue 16): notifications on cost at most 1.5x the run without them. Run by hand:
``python benchmarks/bench_notifications.py [N] [--db URL] [--profile]``. Prints CPU seconds of
each run (the child process's user + system time), the ratio, and µs per message.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

NOTIFICATIONS = """\
  notifications:
    notifiers: [mailbox]
    mailbox: {directory: outbox}
    admins: [billing@example.com]
    reminder: {enabled: true, days_before: 14}
    invoice: {enabled: true, attach_pdf: false}  # a PDF's price is the document's, not the outbox's
"""
FREQUENCIES = ["monthly", "monthly", "biweekly", "quarterly", "annually"]


def generate(root: Path, n: int, *, notify: bool) -> Path:
    """A config of ``n`` declared subscriptions (three items each, mixed frequencies, most
    charged automatically by card, every tenth collected by hand) under ``root``."""
    lines = [
        "settings:",
        "  account: Bench Coffee Co.",
        "  currencies: [USD]",
        "  payments: {processor: test}",
        NOTIFICATIONS.rstrip("\n") if notify else "  notifications: {notifiers: []}",
        "products:",
    ]
    for i, freq in enumerate(FREQUENCIES):
        for k in range(3):
            lines += [f"  - id: p{i}-{k}", f"    name: Coffee {i}-{k}",
                      f'    price: "{10 + k}.50 USD"', f"    frequency: {freq}"]  # fmt: skip
    lines.append("contacts:")
    for i in range(n):
        lines += [
            f"  - id: c{i}",
            f"    name: Customer {i}",
            f"    email: c{i}@example.com",
            f"    payment_methods: [{{id: pm{i}, type: card, token: tok_visa}}]",
        ]
    lines.append("subscriptions:")
    for i in range(n):
        freq = i % len(FREQUENCIES)
        collection = (
            "{mode: manual}" if i % 10 == 9 else f"{{mode: automatic, payment_method: pm{i}}}"
        )
        lines += [
            f"  - id: s{i}",
            f"    contact: c{i}",
            "    start: 2026-12-01",
            "    items:",
            *(f"      - {{product: p{freq}-{k}, quantity: {k + 1}}}" for k in range(3)),
            f"    collection: {collection}",
        ]
    config = root / ("on" if notify else "off")
    config.mkdir(parents=True)
    (config / "abonnement.yaml").write_text("\n".join(lines) + "\n")
    return config


def timed(config: Path, db: str, until: str, profile: Path | None = None) -> float:
    """CPU seconds (user + system) of one ``run --until`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "abonnement", "--config", str(config), "--db", db,
           "run", "--until", until]  # fmt: skip
    if profile is not None:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), *cmd[1:]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=os.environ.copy())  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=1_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the runs (to tmp)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    for label, until in (("one billing date", "2026-12-01"), ("12 months", "2027-11-30")):
        seconds = {}
        for notify in (False, True):
            case = root / label.replace(" ", "-")
            config = generate(case, args.n, notify=notify)
            db = f"sqlite:///{config / 'abonnement.db'}"
            profile = case / f"{config.name}.prof" if args.profile else None
            seconds[notify] = timed(config, db, until, profile)
        outbox = root / label.replace(" ", "-") / "on" / "outbox"
        messages = len(list(outbox.glob("*.eml")))
        extra = seconds[True] - seconds[False]
        per = extra / messages * 1e6 if messages else 0.0
        print(f"{label:17} N={args.n}: off {seconds[False]:.2f} s, on {seconds[True]:.2f} s "
              f"(ratio {seconds[True] / seconds[False]:.2f}), {messages} messages, "
              f"{per:.0f} µs per message beyond the run")  # fmt: skip
        if args.profile:
            print(f"  profiles in {root / label.replace(' ', '-')}")


if __name__ == "__main__":
    main()
