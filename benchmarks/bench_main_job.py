"""The user's main job through the CLI: ``validate``, ``apply``, an idle ``run`` and billing
runs of N declared subscriptions, with the coffee example's notifications on and off.

Run by hand: ``python benchmarks/bench_main_job.py N [--db URL] [--workers K]
[--phases validate,apply,idle,run1,run12] [--notify on,off]``.

The config is the coffee example's (``abonnement init``) grown to N declared subscriptions:
three items each, monthly / quarterly / annually, automatic card collection for two in
three and manual invoices for the rest, a tax rule and a discount rule, and the example's
notification settings (mailbox notifier, receipts, admin notices, reminders) — or none of
them (``--notify off``). Every subscription starts on 2026-12-01.

One process per phase: the driver starts a fresh Python for each, which imports the package
first (start-up is not timed) and then invokes the CLI in-process (``abonnement.cli``'s
group through click's ``CliRunner``) exactly as a user's command line would. Each phase
reports wall and CPU seconds (its children's too, for ``--workers 2``) and its peak RSS
(``resource.getrusage``, taken when the command returns: the floors measured after it in the
same process, such as PyYAML loading the whole config at once, are not the command's).
Phases, in order, on one database per notification setting (each phase run with notifications
on, then off, before the next: the ratios compare runs taken minutes apart at most):

- ``validate``: ``abonnement validate``; beside it a cold in-process ``config.loader.load``
  and PyYAML's ``CSafeLoader`` over the same files (the floor for the parser we require),
  and the same load of a 1,000-subscription config (per-subscription cost at N vs 1,000);
- ``apply``: ``abonnement apply --as-of 2026-11-30`` (creates the N subscriptions);
- ``idle``: ``abonnement run --until 2026-11-30`` twice (nothing due, nothing changed); the
  second is reported, less the same idle run of a one-subscription config (start-up);
- ``run1``: ``run --until 2026-12-01`` (one billing date: every subscription bills);
- ``run12``: ``run --until 2027-12-01`` (the twelve months after it).

Floors beside each phase: the rows the phase wrote to the run's own tables (invoices, lines,
adjustments, payments, events, deliveries), inserted again with raw ``sqlite3``
``executemany`` into an empty copy of the schema; and the messages it wrote, rendered with one
compiled Jinja2 template and written to as many files. ``--db postgresql+psycopg://…`` runs on
a schema of its own in that database (dropped after); ``--workers`` is passed to ``run``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

START = "2026-11-30"
PHASES = ("validate", "apply", "idle", "run1", "run12")
UNTIL = {"idle": START, "run1": "2026-12-01", "run12": "2027-12-01"}
TABLES = ("invoices", "invoice_lines", "invoice_subscriptions", "invoice_adjustments",
          "payments", "events", "deliveries")  # fmt: skip
FREQUENCIES = ("monthly", "quarterly", "annually")

SETTINGS = """\
settings:
  account: Just One More Cup Coffee Co.
  timezone: America/New_York
  currencies: [USD, EUR]
  default_currency: USD
  rules: ["rules/*.rules"]
  invoices:
    number_format: "INV-{seq:07d}"
    comments: Thank you for your business!
    payment_terms: net_30
  payments:
    processor: test
    accepted_methods: [card, ach]
"""
NOTIFICATIONS = """\
  notifications:
    notifiers: [mailbox]
    mailbox: {directory: outbox}
    admins: [billing@example.com]
    reminder: {enabled: true, days_before: 14}
"""
RULES = """\
discount bulk_coffee {
  label "Bulk discount"
  amount 10%
  applies_to line
  when line.quantity >= 3 and line.sku startswith "COFFEE-"
}

tax dk_vat {
  rate 25%
  when customer.country == "DK"
}
"""


def generate(root: Path, n: int, notify: bool) -> list[Path]:
    """Write the config of ``n`` declared subscriptions to ``root``; its YAML files."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "pricing.rules").write_text(RULES)
    products = ["products:"]
    for freq in FREQUENCIES:
        for size, price in (("1kg", 25), ("500g", 18), ("250g", 12)):
            products += [
                f"  - id: coffee-{size}-{freq}",
                f"    sku: COFFEE-{size.upper()}-{freq[0].upper()}",
                f"    name: Coffee {size} {freq}",
                f'    price: "{price}.00 USD"',
                f"    frequency: {freq}",
            ]
    quiet = "  notifications: {notifiers: []}\n"  # no notifier: nothing is sent
    main = SETTINGS + (NOTIFICATIONS if notify else quiet) + "\n".join(products) + "\n"
    (root / "abonnement.yaml").write_text(main)
    countries = ("DK", "US", "DE", "US", "SE")
    with (root / "customers.yaml").open("w") as out:
        out.write("contacts:\n")
        for i in range(n):
            out.write(
                f"  - id: c{i}\n    name: Customer {i}\n    email: c{i}@example.com\n"
                f"    address: {{line1: {i} Main St, city: Springfield, postal_code: "
                f"'{10000 + i % 90000}', country: {countries[i % 5]}}}\n"
                f"    payment_methods:\n      - {{id: c{i}-visa, type: card, token: tok_visa}}\n"
            )
    with (root / "subscriptions.yaml").open("w") as out:
        out.write("subscriptions:\n")
        for i in range(n):
            freq = FREQUENCIES[i % 3]
            items = "".join(
                f"      - {{product: coffee-{size}-{freq}, quantity: {1 + (i + k) % 4}}}\n"
                for k, size in enumerate(("1kg", "500g", "250g"))
            )
            collection = (
                f"    collection:\n      mode: automatic\n      method: saved\n"
                f"      payment_method: c{i}-visa\n"
                if i % 3
                else "    collection: {mode: manual}\n"
            )
            out.write(
                f"  - id: s{i}\n    contact: c{i}\n    currency: USD\n    start: 2026-12-01\n"
                f"    items:\n{items}{collection}"
            )
    return [root / "abonnement.yaml", root / "customers.yaml", root / "subscriptions.yaml"]


# -- one phase, in a child process -------------------------------------------------------


def _usage() -> tuple[float, int]:
    """CPU seconds of this process and its children, and the peak RSS in bytes."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(me.ru_maxrss, kids.ru_maxrss) * 1024


def _invoke(args: list[str]) -> tuple[float, float, Any]:
    """Run the CLI in-process; (wall s, CPU s, result). Fails loudly on a bad exit."""
    from click.testing import CliRunner

    from abonnement.cli import cli

    cpu0, _ = _usage()
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    wall = time.perf_counter() - started
    cpu1, _ = _usage()
    if result.exit_code not in (0, 4):
        raise SystemExit(f"abonnement {' '.join(args)} exited {result.exit_code}:\n{result.output}")
    return wall, cpu1 - cpu0, result


def _counts(db: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return out


def _rows(db: str, table: str, skip: int, count: int) -> tuple[list[str], list[tuple]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM {table} LIMIT {count} OFFSET {skip}"))
        columns, rows = (
            list(result.keys()),
            [
                tuple(
                    v if isinstance(v, (int, str, float, bytes, type(None))) else str(v) for v in r
                )
                for r in result
            ],
        )
    engine.dispose()
    return columns, rows


def row_floor(db: str, before: dict[str, int], after: dict[str, int], tmp: Path) -> float:
    """Seconds raw sqlite3 takes to insert the rows the phase wrote (the run's own tables,
    an empty copy of their SQLite schema with its indexes) with executemany, one commit."""
    from sqlalchemy import create_engine

    from abonnement.plugins.storage.tables import metadata

    path = tmp / f"floor-{uuid.uuid4().hex}.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[metadata.tables[t] for t in TABLES])
    engine.dispose()
    data = {t: _rows(db, t, before[t], after[t] - before[t]) for t in TABLES}
    conn = sqlite3.connect(path)
    started = time.process_time()
    for table, (columns, rows) in data.items():
        if rows:
            marks = ", ".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    conn.commit()
    elapsed = time.process_time() - started
    conn.close()
    path.unlink()
    return elapsed


def message_floor(count: int, tmp: Path) -> float:
    """Seconds to render ``count`` messages with one compiled Jinja2 template and write each
    to a file of its own."""
    import jinja2

    template = jinja2.Environment(autoescape=True).from_string(
        "From: billing@example.com\nTo: {{ to }}\nSubject: Invoice {{ number }}\n\n"
        "Dear {{ name }},\n\nyour invoice {{ number }} of {{ amount }} USD is due on {{ due }}."
        "\n{% for line in lines %}{{ line.name }} x {{ line.quantity }}: {{ line.amount }}\n"
        "{% endfor %}\nThank you for your business!\n"
    )
    folder = tmp / f"floor-{uuid.uuid4().hex}"
    folder.mkdir()
    lines = [{"name": f"Coffee {k}", "quantity": k + 1, "amount": f"{25 * (k + 1)}.00"}
             for k in range(3)]  # fmt: skip
    started = time.process_time()
    for i in range(count):
        text = template.render(to=f"c{i}@example.com", number=f"INV-{i:07d}", name=f"C {i}",
                               amount=f"{i % 500}.00", due="2026-12-31", lines=lines)  # fmt: skip
        (folder / f"{i}.eml").write_text(text)
    # kept until the benchmark ends: on a file system without a journal, files created soon
    # after many were deleted cost several times more (the kernel skips recently freed
    # inodes), which would charge the next phase for this floor's clean-up
    return time.process_time() - started


def _outbox_count(root: Path) -> int:
    folder = root / "outbox"
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def child(phase: str, root: Path, db: str, workers: int, tiny: Path, tiny_db: str) -> dict:
    """One phase, timed in this process (imports done first, not timed)."""
    import yaml

    import abonnement.cli  # noqa: F401  (start-up, not timed)

    base = ["--config", str(root), "--db", db, "-q"]
    out: dict[str, Any] = {"phase": phase}
    tmp = root.parent / "floors"  # removed with the benchmark's folder (message_floor)
    tmp.mkdir(exist_ok=True)
    if phase == "validate":
        out["wall"], out["cpu"], _ = _invoke([*base, "validate"])
        _, out["rss"] = _usage()  # the command's: the floors below parse the files again
        from abonnement.config.loader import load
        from abonnement.plugins.manager import Plugins

        names = Plugins.load().names()
        files = sorted(root.glob("*.yaml"))
        load(tiny, names)  # compiles the schemas once, as any first load does
        # CPU seconds: steadier than the wall clock on a shared machine
        started = time.process_time()
        for f in files:
            yaml.load(f.read_bytes(), Loader=yaml.CSafeLoader)
        out["csafe"] = time.process_time() - started
        # the fair floor: our load turns the cyclic garbage collector off while it
        # builds, so the parser is timed that way too (a caller could do the same)
        gc.disable()
        try:
            started = time.process_time()
            for f in files:
                yaml.load(f.read_bytes(), Loader=yaml.CSafeLoader)
            out["csafe_nogc"] = time.process_time() - started
        finally:
            gc.enable()
        started = time.process_time()
        load(root, names)
        out["load"] = time.process_time() - started
        started = time.process_time()
        load(tiny, names)
        out["load_1k"] = time.process_time() - started
    elif phase == "apply":
        out["wall"], out["cpu"], _ = _invoke([*base, "apply", "--as-of", START])
    elif phase == "idle":
        # the first idle run may build what later ones reuse; the second is reported
        _invoke([*base, "run", "--until", START])
        out["wall"], out["cpu"], _ = _invoke([*base, "run", "--until", START])
        tiny_base = ["--config", str(tiny), "--db", tiny_db, "-q"]
        _invoke([*tiny_base, "run", "--until", START])
        _, out["startup"], _ = _invoke([*tiny_base, "run", "--until", START])
    else:
        before, messages = _counts(db), _outbox_count(root)
        args = [*base, "run", "--until", UNTIL[phase], "--batch-size", "500"]
        if workers > 1:
            args += ["--workers", str(workers)]
        out["wall"], out["cpu"], _ = _invoke(args)
        after = _counts(db)
        out["rows"] = {t: after[t] - before[t] for t in TABLES}
        out["messages"] = _outbox_count(root) - messages
        _, out["rss"] = _usage()
        out["row_floor"] = row_floor(db, before, after, tmp)
        out["message_floor"] = message_floor(out["messages"], tmp)
    if "rss" not in out:
        _, out["rss"] = _usage()
    return out


# -- the driver ------------------------------------------------------------------------------


def _pg_schema(url: str, name: str, create: bool) -> str:
    """A schema of its own in the PostgreSQL database at ``url``; its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        if create:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        else:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    own = f"{url}{sep}options=-csearch_path%3D{name}"
    if create:  # migrated as `abonnement db upgrade` would (only SQLite files migrate alone)
        from abonnement.plugins.storage.sql import SqlStorage

        SqlStorage(own, migrate=False).upgrade()
    return own


def _spawn(phase: str, root: Path, db: str, workers: int, tiny: Path, tiny_db: str) -> dict:
    here = Path(__file__).resolve()
    cmd = [sys.executable, str(here), "--child", phase, "--root", str(root), "--url", db,
           "--workers", str(workers), "--tiny", str(tiny), "--tiny-url", tiny_db]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _us(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:,.0f}" if count else "-"


def report(n: int, notify: str, results: list[dict], base: int) -> dict[str, float]:
    """Print one table per notification setting; the figures the ratios need."""
    print(f"\n== N={n:,} declared subscriptions, notifications {notify} ==")
    # per subscription, invoice and message: CPU µs, steadier than the wall clock here
    print(f"{'phase':9} {'wall s':>8} {'CPU s':>7} {'RSS MB':>7} {'µs/sub':>8} {'invoices':>9}"
          f" {'µs/inv':>7} {'messages':>9} {'µs/msg':>7}  floors")  # fmt: skip
    figures: dict[str, float] = {}
    for r in results:
        invoices = r.get("rows", {}).get("invoices", 0)
        messages = r.get("messages", 0)
        floors = ""
        if r["phase"] == "validate":
            floors = (f"CSafeLoader {r['csafe']:.3f} CPU s ({r['csafe_nogc']:.3f} without the "
                      f"garbage collector); load {r['load']:.3f} CPU s "
                      f"({r['load'] / r['csafe_nogc']:.2f}x CSafeLoader without it)")  # fmt: skip
            figures["load_ratio"] = r["load"] / r["csafe_nogc"]
            figures["load_per_sub"] = r["load"] / n
            figures["load_per_sub_1k"] = r["load_1k"] / base
            figures["base"] = base
        elif r["phase"] == "idle":
            per = (r["cpu"] - r["startup"]) / max(n - 1, 1) * 1e6
            floors = f"start-up {r['startup']:.3f} CPU s; less start-up {per:,.0f} CPU µs/sub"
            figures["idle"] = per
        elif "rows" in r:
            rows = sum(r["rows"].values())
            floors = (f"sqlite3 {rows:,} rows {r['row_floor']:.2f} CPU s; "
                      f"jinja2 {messages:,} msgs {r['message_floor']:.2f} CPU s")  # fmt: skip
            figures[r["phase"]] = r["cpu"]
            figures[r["phase"] + "_floor"] = r["row_floor"] + r["message_floor"]
        print(f"{r['phase']:9} {r['wall']:8.2f} {r['cpu']:7.2f} {r['rss'] / 1e6:7.0f}"
              f" {_us(r['cpu'], n):>8} {invoices:9,} {_us(r['cpu'], invoices):>7}"
              f" {messages:9,} {_us(r['cpu'], messages):>7}  {floors}")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--db", help="postgresql+psycopg://… (default: a SQLite file)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--notify", default="on,off")
    parser.add_argument("--keep", help="write the configs and databases here and keep them")
    parser.add_argument(
        "--base", type=int, default=1000, help="the N whose load cost per subscription N's is"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tiny", help=argparse.SUPPRESS)
    parser.add_argument("--tiny-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, Path(args.root), args.url, args.workers, Path(args.tiny),
                       args.tiny_url)  # fmt: skip
        print(json.dumps(result))
        return
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.workers > 1 and not args.db:
        parser.error("--workers > 1 needs --db postgresql+psycopg://…")
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-main-job-"))
    work.mkdir(parents=True, exist_ok=True)
    schemas: list[str] = []
    all_figures: dict[str, dict[str, float]] = {}
    try:
        settings = [s for s in args.notify.split(",") if s]
        setups: dict[str, tuple[Path, Path, str, Path, str]] = {}
        for notify in settings:
            root, load1k, one = (work / f"{k}-{notify}" for k in ("config", "load1k", "one"))
            generate(root, args.n, notify == "on")
            generate(load1k, args.base, notify == "on")  # the load's cost per subscription
            generate(one, 1, notify == "on")  # the idle run's start-up
            if args.db:
                name = f"bench_{uuid.uuid4().hex[:10]}"
                schemas += [name, name + "_one"]
                db, one_db = (
                    _pg_schema(args.db, name, True),
                    _pg_schema(args.db, name + "_one", True),
                )
            else:
                db, one_db = f"sqlite:///{root}/abonnement.db", f"sqlite:///{one}/abonnement.db"
            if "idle" in phases:
                _spawn("apply", one, one_db, 1, one, one_db)
            setups[notify] = (root, load1k, db, one, one_db)
        # each phase on and off one after the other: this machine's speed drifts over
        # minutes, and a ratio of two runs taken far apart would measure the drift
        results: dict[str, list[dict]] = {notify: [] for notify in settings}
        for phase in (p for p in PHASES if p in phases):
            for notify in settings:
                root, load1k, db, one, one_db = setups[notify]
                results[notify].append(_spawn(
                    phase, root, db, args.workers, load1k if phase == "validate" else one,
                    one_db))  # fmt: skip
        for notify in settings:
            all_figures[notify] = report(args.n, notify, results[notify], args.base)
    finally:
        if args.db:
            for name in schemas:
                _pg_schema(args.db, name, False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n== ratios ==")
    on, off = all_figures.get("on", {}), all_figures.get("off", {})
    for phase in ("run1", "run12"):
        if phase in on and phase in off and off[phase]:
            print(f"{phase}: notifications on / off (CPU) = {on[phase] / off[phase]:.1f}x"
                  " (target <= 1.5x)")  # fmt: skip
            # the best ratio the floors allow: the off run plus what its floors say the
            # messages and their rows add, written the cheapest way (one template, no
            # translation, no HTML part, no atomic rename or flush to disk)
            added = on[phase + "_floor"] - off[phase + "_floor"]
            print(f"{phase}: at the floors, notifications would add {added:.2f} CPU s to the "
                  f"off run's {off[phase]:.2f}: {(off[phase] + added) / off[phase]:.2f}x; "
                  f"they add {on[phase] - off[phase]:.2f} "
                  f"({(on[phase] - off[phase]) / max(added, 1e-9):.1f}x the floors)")  # fmt: skip
    for notify, figures in all_figures.items():
        if "load_ratio" in figures:
            growth = figures["load_per_sub"] / figures["load_per_sub_1k"]
            print(f"load vs CSafeLoader, both without the garbage collector ({notify}): "
                  f"{figures['load_ratio']:.2f}x (target <= 1.5x);"
                  f" per-sub {figures['load_per_sub'] * 1e6:,.0f} µs at N vs "
                  f"{figures['load_per_sub_1k'] * 1e6:,.0f} µs at {figures['base']:,.0f}"
                  f" = {growth:.2f}x"
                  " (target <= 1.2x)")  # fmt: skip
        if "idle" in figures:
            print(f"idle run ({notify}): {figures['idle']:,.0f} µs per declared subscription,"
                  " start-up aside (target <= 60)")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
