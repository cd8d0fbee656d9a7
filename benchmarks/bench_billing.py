"""One monthly billing run over N generated subscriptions, next to a raw sqlite3 floor.

Run by hand: ``python benchmarks/bench_billing.py [N] [--db URL] [--collect] [--workers W]
[--profile]``. ``--collect`` makes every subscription automatic (the ``test`` processor
charges each invoice); compare with the same run without it. ``--workers`` needs PostgreSQL.
N declared
subscriptions (3 items each, mixed frequencies, 2 rules) are written straight into the
database; the run bills December 2026 once for each. The floor is raw ``sqlite3``
``executemany`` of the same rows (invoices, lines, adjustments) in the same process.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sqlite3
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from abonnement.app import App
from abonnement.engine.items import Item
from abonnement.engine.money import Money, Percent
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription

CONFIG = """\
settings:
  account: Bench Co.
  currencies: [USD]
  rules: ["rules/*.rules"]
  invoices: {payment_terms: net_30}
tax_rates:
  - {id: vat, name: VAT, rate: 25%}
contacts:
""" + "".join(
    f"  - {{id: c{i}, name: C{i}, email: c{i}@example.com, address: {{country: {c}}}}}\n"
    for i, c in enumerate(["DK", "US", "DE", "DK", "SE"] * 20)
)
RULES = """\
discount bulk { amount 10% when line.quantity >= 3 }
tax dk_vat { rate 25% when customer.country == "DK" }
"""
FREQUENCIES = [Frequency.parse(f) for f in ("monthly", "quarterly", "annually")]


def generate(first: int, count: int, collect: bool = False) -> list[Subscription]:
    subs = []
    for i in range(first, first + count):
        freq = FREQUENCIES[i % 3]
        items = tuple(
            Item(f"Item {k}", 1 + (i + k) % 5, Money(Decimal(f"{5 + k}.{i % 100:02d}"), "USD"),
                 sku=f"SKU-{k}", frequency=freq,
                 unit_discount=Percent(Decimal(5)) if k == 2 else None)
            for k in range(3)
        )  # fmt: skip
        anchor = date(2026, 12, 1) + timedelta(days=i % 28)
        extra = {"collection_mode": "automatic", "payment_token": "tok_visa",
                 "payment_type": "card"} if collect else {}  # fmt: skip
        subs.append(Subscription(f"s{i:08d}", f"c{i % 100}", "USD", freq, anchor, items,
                                 payment_terms="net_30", **extra))  # fmt: skip
    return subs


def floor(path: Path, invoices: list[dict]) -> float:
    """Raw sqlite3: the same rows, executemany, one transaction per 500 invoices."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE inv (number TEXT PRIMARY KEY, sub TEXT, total INTEGER, issued TEXT);
        CREATE TABLE line (number TEXT, pos INTEGER, amount INTEGER, PRIMARY KEY (number, pos));
        CREATE TABLE adj (number TEXT, pos INTEGER, kind TEXT, rule TEXT, amount INTEGER,
                          PRIMARY KEY (number, pos));
    """)
    started = time.perf_counter()
    for start in range(0, len(invoices), 500):
        chunk = invoices[start : start + 500]
        with db:
            db.executemany(
                "INSERT INTO inv VALUES (?, ?, ?, ?)",
                [(i["number"], i["sub"], i["total"], i["issued"]) for i in chunk],
            )
            db.executemany(
                "INSERT INTO line VALUES (?, ?, ?)",
                [(i["number"], p, a) for i in chunk for p, a in enumerate(i["lines"])],
            )
            db.executemany("INSERT INTO adj VALUES (?, ?, ?, ?, ?)",
                           [(i["number"], p, k, r, a) for i in chunk
                            for p, (k, r, a) in enumerate(i["adjustments"])])  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--collect", action="store_true", help="charge every invoice too")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config" / "rules").mkdir(parents=True)
        ledger = root / "ledger.db"
        (root / "config" / "abonnement.yaml").write_text(CONFIG.replace(
            "  invoices: {payment_terms: net_30}\n",
            f"  invoices: {{payment_terms: net_30}}\n  payments: {{processor: test, "
            f"test: {{ledger: '{ledger}'}}}}\n"))  # fmt: skip
        (root / "config" / "rules" / "bench.rules").write_text(RULES)
        url = _fresh_database(args.db) if args.db else f"sqlite:///{root / 'bench.db'}"
        app = App(root / "config", url)
        store = app.storage
        started = time.perf_counter()
        for start in range(0, args.n, 10_000):
            chunk = generate(start, min(10_000, args.n - start), args.collect)
            store.insert_subscriptions(chunk, "declared")
        print(f"generated {args.n:,} subscriptions in {time.perf_counter() - started:.1f} s")
        app.config  # noqa: B018 - load outside the timing
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        if args.workers > 1:
            summary, _ = app.run_workers(date(2026, 12, 31), args.workers,
                                         batch_size=args.batch_size)  # fmt: skip
        else:
            summary, _ = app.run(date(2026, 12, 31), batch_size=args.batch_size)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rate = summary.invoice_count / elapsed
        charges = summary.payments.get("succeeded", 0)
        print(f"billing run ({args.workers} worker(s)): {summary.invoice_count:,} invoices and "
              f"{charges:,} charges in {elapsed:.2f} s = {rate:,.0f} invoices/s; "
              f"peak RSS {rss:,.0f} MB")  # fmt: skip
        rows = _floor_rows(store, min(summary.invoice_count, 100_000))
        floor_s = floor(root / "floor.db", rows)
        floor_rate = len(rows) / floor_s
        print(f"floor (raw sqlite3 executemany): {floor_rate:,.0f} invoices/s; "
              f"run / floor = {rate / floor_rate:.2f} (target >= 0.33)")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(30)


def _fresh_database(url: str) -> str:
    """A PostgreSQL URL gets a schema of its own (dropped at exit), migrated."""
    import atexit
    import os

    import sqlalchemy as sa

    from abonnement.plugins.storage.sql import SqlStorage

    schema = f"bench_{os.getpid()}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))

    atexit.register(drop)
    fresh = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    SqlStorage(fresh, migrate=False).upgrade()
    return fresh


def _floor_rows(store, limit: int) -> list[dict]:
    import sqlalchemy as sa

    from abonnement.plugins.storage import tables as t

    with store.engine.connect() as conn:
        invoices = conn.execute(sa.select(t.invoices).limit(limit)).mappings().all()
        numbers = [i["number"] for i in invoices]
        lines: dict[str, list] = {}
        adjustments: dict[str, list] = {}
        for row in conn.execute(sa.select(t.invoice_lines)).mappings():
            lines.setdefault(row["invoice_number"], []).append(int(row["amount"] * 1_000_000))
        for row in conn.execute(sa.select(t.invoice_adjustments)).mappings():
            adjustments.setdefault(row["invoice_number"], []).append(
                (row["kind"], row["rule"], int(row["amount"] * 1_000_000))
            )
    return [
        {"number": n, "sub": i["subscription_id"], "total": int(i["total"] * 1_000_000),
         "issued": str(i["issue_date"]), "lines": lines.get(n, []),
         "adjustments": adjustments.get(n, [])}
        for n, i in zip(numbers, invoices, strict=True)
    ]  # fmt: skip


if __name__ == "__main__":
    main()
