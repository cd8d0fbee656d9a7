"""One monthly billing run over N generated subscriptions, next to a raw sqlite3 floor.

Run by hand: ``python benchmarks/bench_billing.py [N] [--db URL] [--collect] [--workers W]
[--profile]``. N declared subscriptions (3 items each, mixed frequencies, 2 rules) are
written straight into the database; the run bills December 2026 once for each. The floor is
raw ``sqlite3`` ``executemany`` of the same rows (invoices, lines, adjustments) in the same
process, as narrow tables without indexes (the issue's yardstick); on SQLite two more floors
insert the run's own rows, every column, into an empty copy of its own schema — invoices,
lines and adjustments alone, then with the events and subscription updates a run also
writes. ``--collect`` bills the same subscriptions without charges first, then with every
one automatic (the ``test`` processor charges each invoice), and compares; on SQLite a
floor writes the charges' own rows with no engine. ``--workers`` needs PostgreSQL.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sqlite3
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from abonnement.app import App
from abonnement.engine.items import Item
from abonnement.engine.money import Money, Percent
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.operations import billing

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


def generate(
    first: int, count: int, collect: bool = False, reminder_days: int = 14
) -> list[Subscription]:
    """``count`` declared subscriptions from number ``first``, scheduled with the reminder
    lead of the settings (``reminder_days``) as ``apply`` stores them."""
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
                                 payment_terms="net_30", reminder_days=reminder_days,
                                 **extra))  # fmt: skip
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


def schema_floor(source: Path, target: Path, batch: int, *, with_state: bool) -> tuple[int, float]:
    """The rows the run wrote, read back raw and inserted with raw ``sqlite3`` into an empty
    copy of the same schema (columns, keys, indexes, pragmas), one transaction per ``batch``
    invoices: what storing them costs with no engine at all. ``with_state`` adds what a run
    must also write: its events and each subscription's new state."""
    src = sqlite3.connect(source)
    invoices = src.execute("SELECT * FROM invoices ORDER BY seq").fetchall()
    lines: dict[str, list] = {}
    for row in src.execute("SELECT * FROM invoice_lines"):
        lines.setdefault(row[0], []).append(row)
    adjustments: dict[str, list] = {}
    for row in src.execute("SELECT * FROM invoice_adjustments"):
        adjustments.setdefault(row[0], []).append(row)
    subscriptions = src.execute("SELECT * FROM subscriptions").fetchall()
    events = src.execute(
        "SELECT type, subject_id, seq, on_date, payload, delivered FROM events"
    ).fetchall()
    stepped = src.execute(
        "SELECT status, next_index, open_due_on, next_event_on, event_seq, canceled_on, "
        "reminded, pending_lines, reminder_days, id FROM subscriptions"
    ).fetchall()
    db = _empty_copy(src, target)
    db.execute("BEGIN")
    db.executemany(f"INSERT INTO subscriptions VALUES ({marks(subscriptions[0])})", subscriptions)
    db.execute("COMMIT")
    chunks = range(0, len(invoices), batch)
    started = time.perf_counter()
    for k, start in enumerate(chunks):
        chunk = invoices[start : start + batch]
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO invoices VALUES ({marks(chunk[0])})", chunk)
        rows = [r for i in chunk for r in lines.get(i[0], [])]
        if rows:
            db.executemany(f"INSERT INTO invoice_lines VALUES ({marks(rows[0])})", rows)
        rows = [r for i in chunk for r in adjustments.get(i[0], [])]
        if rows:
            db.executemany(f"INSERT INTO invoice_adjustments VALUES ({marks(rows[0])})", rows)
        if with_state:  # this chunk's share of the events and subscription writes
            db.executemany(
                "INSERT INTO events (type, subject_id, seq, on_date, payload, "
                "delivered) VALUES (?, ?, ?, ?, ?, ?)",
                _share(events, k, len(chunks)),
            )
            db.executemany(
                "UPDATE subscriptions SET status = ?, next_index = ?, "
                "open_due_on = ?, next_event_on = ?, event_seq = ?, canceled_on = ?, "
                "reminded = ?, pending_lines = ?, reminder_days = ? WHERE id = ?",
                _share(stepped, k, len(chunks)),
            )
        db.execute("COMMIT")
    return len(invoices), time.perf_counter() - started


def collection_floor(source: Path, target: Path, batch: int) -> tuple[int, float]:
    """What collecting costs with no engine: the rows a collection run wrote for its charges,
    with raw ``sqlite3``, into a copy of the database as invoicing left it, ``batch`` charges
    at a time: the attempts written pending and committed before the processor hears of
    them, the ``test`` processor's own ledger (one commit per charge: an outside service's
    record of each charge), then the outcomes (payments and invoices updated, their events,
    each subscription's event count) in one transaction."""
    from abonnement.engine.money import Money
    from abonnement.plugins.processors.test import TestProcessor

    src = sqlite3.connect(source)
    charged = ("payment.succeeded", "invoice.paid")
    before = {name: src.execute(f"SELECT * FROM {name}").fetchall()
              for name in ("subscriptions", "invoices")}  # fmt: skip
    events = src.execute("SELECT type, subject_id, seq, on_date, payload, delivered FROM events "
                         "ORDER BY id").fetchall()  # fmt: skip
    payments = src.execute(
        "SELECT invoice_number, attempt, amount, currency, method, idempotency_key, on_date, "
        "status, failure_code, reference, check_on, manual FROM payments ORDER BY id"
    ).fetchall()
    subject = {number: sub for number, sub in src.execute("SELECT number, subscription_id "
                                                          "FROM invoices")}  # fmt: skip
    db = _empty_copy(src, target)
    db.execute("BEGIN")
    for name, rows in before.items():
        db.executemany(f"INSERT INTO {name} VALUES ({marks(rows[0])})", rows)
    invoicing = [e for e in events if e[0] not in charged]
    db.executemany("INSERT INTO events (type, subject_id, seq, on_date, payload, delivered) "
                   "VALUES (?, ?, ?, ?, ?, ?)", invoicing)  # fmt: skip
    db.execute("COMMIT")
    outcome_events = [e for e in events if e[0] in charged]
    processor = TestProcessor({"ledger": str(target.with_suffix(".ledger"))})
    day = date(2026, 12, 1)
    started = time.perf_counter()
    for start in range(0, len(payments), batch):
        chunk = payments[start : start + batch]
        db.execute("BEGIN")
        db.executemany("INSERT INTO payments (invoice_number, attempt, amount, currency, "
                       "method, idempotency_key, on_date, status, manual) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                       [(*p[:7], p[11]) for p in chunk])  # fmt: skip
        db.execute("COMMIT")
        for p in chunk:
            processor.charge(amount=Money(Decimal(p[2]) / 1_000_000, p[3]), token="tok_visa",
                             idempotency_key=p[5], on=day)  # fmt: skip
        db.execute("BEGIN")
        db.executemany("UPDATE payments SET status = ?, failure_code = ?, reference = ?, "
                       "check_on = ? WHERE idempotency_key = ?",
                       [(*p[7:11], p[5]) for p in chunk])  # fmt: skip
        db.executemany("UPDATE invoices SET status = 'paid', amount_paid = total, "
                       "collect_on = NULL WHERE number = ?", [(p[0],) for p in chunk])  # fmt: skip
        db.executemany("INSERT INTO events (type, subject_id, seq, on_date, payload, delivered) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       outcome_events[2 * start : 2 * (start + len(chunk))])  # fmt: skip
        db.executemany("UPDATE subscriptions SET event_seq = event_seq + 2 WHERE id = ?",
                       [(subject[p[0]],) for p in chunk])  # fmt: skip
        db.execute("COMMIT")
    return len(payments), time.perf_counter() - started


def _empty_copy(source: sqlite3.Connection, target: Path) -> sqlite3.Connection:
    """An empty database with ``source``'s schema (keys, indexes) and the storage plugin's
    pragmas, in autocommit mode (transactions are explicit)."""
    db = sqlite3.connect(target, isolation_level=None)
    for pragma in ("page_size=16384", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "wal_autocheckpoint=10000", "cache_size=-65536"):  # fmt: skip
        db.execute(f"PRAGMA {pragma}")
    for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        db.execute(sql)
    return db


def _cpu() -> tuple[float, float]:
    """CPU seconds so far of this process and its finished children (the workers), and of
    the whole machine (from /proc/stat; 0 where there is none): the rest is mostly the
    database server when it runs here."""
    own = sum(getattr(resource.getrusage(who), field) for who in
              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))  # fmt: skip
    try:
        ticks = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return own, 0.0
    busy = sum(int(x) for x in ticks[:3]) + sum(int(x) for x in ticks[5:8])  # not idle, iowait
    return own, busy / os.sysconf("SC_CLK_TCK")


def marks(row: tuple) -> str:
    return ", ".join("?" * len(row))


def _share(rows: list, k: int, parts: int) -> list:
    return rows[k * len(rows) // parts : (k + 1) * len(rows) // parts]


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
        invoicing = timed_run(root, "invoiced", args) if args.collect else None
        profiler = cProfile.Profile() if args.profile else None
        store, summary, elapsed = timed_run(root, "bench", args, collect=args.collect,
                                            profiler=profiler)  # fmt: skip
        rate = summary.invoice_count / elapsed
        rows = _floor_rows(store, min(summary.invoice_count, 100_000))
        floor_s = floor(root / "floor.db", rows)
        floor_rate = len(rows) / floor_s
        print(f"floor (raw sqlite3 executemany): {floor_rate:,.0f} invoices/s; "
              f"run / floor = {rate / floor_rate:.2f} (target >= 0.33)")  # fmt: skip
        if store.db.sqlite and not args.collect:
            for state in (False, True):
                count, seconds = schema_floor(root / "bench.db", root / f"same{state}.db",
                                              args.batch_size, with_state=state)  # fmt: skip
                what = "+ events and subscription updates" if state else "invoices, lines, adj."
                print(f"floor, the run's own rows into its own schema ({what}): "
                      f"{count / seconds:,.0f} invoices/s; run / floor = "
                      f"{rate / (count / seconds):.2f}")  # fmt: skip
        if invoicing is not None:
            base = invoicing[2]
            print(f"collection costs {elapsed / base:.2f}x the invoicing-only run "
                  f"({elapsed:.2f} s / {base:.2f} s; target <= 1.5)")  # fmt: skip
            if store.db.sqlite:
                count, seconds = collection_floor(root / "bench.db", root / "collected.db",
                                                  args.batch_size)  # fmt: skip
                print(f"floor, collection's own writes and the test processor's ledger, no "
                      f"engine: {count:,} charges in {seconds:.2f} s = {seconds / base:.2f} of "
                      f"the invoicing-only run: collection costs at least "
                      f"{1 + seconds / base:.2f}x")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(30)


def timed_run(
    root: Path, name: str, args: argparse.Namespace, *, collect: bool = False,
    profiler: cProfile.Profile | None = None,
) -> tuple[Any, Any, float]:  # fmt: skip
    """N generated subscriptions in a database of their own, billed once for December 2026
    (automatically collected with ``collect``): the store, the run's summary and its time."""
    url = (_fresh_database(args.db, name) if args.db
           else f"sqlite:///{root / f'{name}.db'}")  # fmt: skip
    app = App(root / "config", url)
    store = app.storage
    lead = app.catalog.settings.reminder_lead
    started = time.perf_counter()
    for start in range(0, args.n, 10_000):
        subs = generate(start, min(10_000, args.n - start), collect, lead)
        store.insert_subscriptions(subs, "declared")
    print(f"generated {args.n:,} subscriptions in {time.perf_counter() - started:.1f} s")
    app.config  # noqa: B018 - load outside the timing
    cpu_before = _cpu()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    summary = billing.bill(app.context, date(2026, 12, 31), batch_size=args.batch_size,
                           workers=args.workers)  # fmt: skip
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = [after - before for before, after in zip(cpu_before, _cpu(), strict=True)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    charges = summary.payments.get("succeeded", 0)
    print(f"billing run ({args.workers} worker(s)): {summary.invoice_count:,} invoices and "
          f"{charges:,} charges in {elapsed:.2f} s = {summary.invoice_count / elapsed:,.0f} "
          f"invoices/s; peak RSS {rss:,.0f} MB")  # fmt: skip
    print(f"CPU per second of the run: billing process(es) {cpu[0] / elapsed:.2f}, "
          f"the rest of the machine {(cpu[1] - cpu[0]) / elapsed:.2f} (the database "
          f"server, if local); cores: {os.cpu_count()}")  # fmt: skip
    return store, summary, elapsed


def _fresh_database(url: str, name: str) -> str:
    """A PostgreSQL URL gets a schema of its own (dropped at exit), migrated."""
    import atexit

    import sqlalchemy as sa

    from abonnement.plugins.storage.sql import SqlStorage

    schema = f"{name}_{os.getpid()}"
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
