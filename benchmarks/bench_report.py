"""``report mrr --from/--to`` over 24 months of N subscriptions' history (target: ≤ 5 s at
N = 100,000).

Run by hand: ``python benchmarks/bench_report.py [N] [--db URL]``. The subscriptions and
their history events (created, activated, one in ten changed, one in twelve canceled, spread
over two years) are written straight into the database; then the report is timed the way the
CLI runs it: one streaming query over the history, one pass over the subscriptions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from abonnement.app import App
from abonnement.engine.analytics import month_starts, report
from abonnement.engine.events import Event
from abonnement.engine.subscriptions import mrr_basis
from benchmarks.bench_billing import CONFIG, _fresh_database, generate

START = date(2025, 1, 1)


def populate(store, n: int, batch: int = 5_000) -> None:
    for first in range(0, n, batch):
        subs, events = [], []
        for sub in generate(first, min(batch, n - first)):
            i = int(sub.id[1:])
            created = START + timedelta(days=i % 700)
            sub = replace(sub, anchor=created, created_on=created, status="active")
            seq = 0

            def add(
                kind: str, day: date, payload: dict, sub_id: str = sub.id, events: list = events
            ) -> None:
                nonlocal seq
                seq += 1
                events.append(Event(kind, sub_id, day, payload, seq))

            add("subscription.created", created, mrr_basis(sub))
            add("subscription.status_changed", created, {"previous_status": "scheduled",
                                                         "status": "active"})  # fmt: skip
            if i % 10 == 0:
                bigger = replace(sub, items=tuple(replace(it, quantity=it.quantity + 1)
                                                  for it in sub.items))  # fmt: skip
                add("subscription.changed", created + timedelta(days=45), mrr_basis(bigger))
            if i % 12 == 0:
                add("subscription.status_changed", created + timedelta(days=90),
                    {"previous_status": "active", "status": "canceled"})  # fmt: skip
            subs.append(replace(sub, event_seq=seq))
        store.insert_subscriptions(subs, "declared", events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        (config / "rules").mkdir(parents=True)
        (config / "abonnement.yaml").write_text(CONFIG)
        (config / "rules" / "bench.rules").write_text("")
        url = _fresh_database(args.db) if args.db else f"sqlite:///{tmp}/report.db"
        app = App(config, url)
        began = time.perf_counter()
        populate(app.storage, args.n)
        print(f"generated {args.n:,} subscriptions' history in {time.perf_counter() - began:.1f} s")
        months = month_starts(date(2025, 1, 1), date(2026, 12, 1))
        began = time.perf_counter()
        histories = app.storage.histories("USD")
        value, series = report("mrr", histories, app.catalog.settings, currency="USD",
                               as_of=date(2026, 12, 31), months=months)  # fmt: skip
        took = time.perf_counter() - began
        print(f"report mrr over {len(series)} months: {took:.2f} s "
              f"(MRR on 2026-12-31: {value})")  # fmt: skip
        began = time.perf_counter()
        report("movements", app.storage.histories("USD"), app.catalog.settings,
               currency="USD", as_of=date(2026, 12, 31), months=months)  # fmt: skip
        print(f"report movements over {len(series)} months: {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    main()
