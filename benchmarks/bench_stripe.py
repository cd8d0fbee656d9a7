"""What keeping each Stripe request before sending it costs, against the local Stripe stub.

Run by hand: ``python benchmarks/bench_stripe.py [N] [--db URL]`` (an empty database; on
PostgreSQL a schema of its own: ``…/test?options=-csearch_path%3Dbench``). N charges (each its own
idempotency key) through the ``stripe`` processor to the stub on loopback: once without
storage (nothing kept: no replay possible after a crash), once with the database keeping
each request (committed before it is sent) and its PaymentIntent id. Prints charges per
second and the cost per charge of keeping them; then N reconciliations by replay (the crash
path). The stub is the test suite's (``tests/plugins/stripe_stub.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abonnement.engine.money import Money
from abonnement.plugins.processors.stripe import StripeProcessor
from abonnement.plugins.storage.sql import SqlStorage
from tests.plugins import stripe_stub as stub

DAY = date(2026, 12, 1)
USD25 = Money(Decimal("25.00"), "USD")


def _charges(processor: StripeProcessor, n: int, prefix: str) -> float:
    started = time.perf_counter()
    for i in range(n):
        key = f"{prefix}/INV-{i}/attempt-1"
        result = processor.charge(amount=USD25, token="pm_visa", idempotency_key=key, on=DAY)
        assert result.status == "succeeded"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=300)
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    server, api = stub.start()
    os.environ["STRIPE_API_KEY"] = stub.SECRET_KEY
    with tempfile.TemporaryDirectory() as folder:
        if args.db:  # a database of its own, migrated (PostgreSQL: a schema of its own)
            SqlStorage(args.db, migrate=False).upgrade()
        store = SqlStorage(args.db or f"sqlite:///{folder}/bench.db")
        bare = _charges(StripeProcessor({"api_base": api}), args.n, "bare")
        kept = _charges(StripeProcessor({"api_base": api, "storage": store}), args.n, "kept")
        # the crash path: Stripe answered, we did not record; replay each kept request
        for i in range(args.n):
            store.set_processor_reference("stripe", f"kept/INV-{i}/attempt-1", "")
        processor = StripeProcessor({"api_base": api, "storage": store})
        started = time.perf_counter()
        for i in range(args.n):
            found = processor.lookup(idempotency_key=f"kept/INV-{i}/attempt-1", on=DAY)
            assert found is not None and found.status == "succeeded"
        replay = time.perf_counter() - started
        store.close()
    server.shutdown()
    n = args.n
    print(f"{n} charges, stub on loopback, {'SQLite' if not args.db else args.db.split(':')[0]}")
    print(f"  nothing kept:      {n / bare:8.0f} charges/s  {bare / n * 1000:6.2f} ms each")
    print(f"  request kept:      {n / kept:8.0f} charges/s  {kept / n * 1000:6.2f} ms each "
          f"(+{(kept - bare) / n * 1000:.2f} ms to keep it)")  # fmt: skip
    print(f"  replay after crash:{n / replay:8.0f} lookups/s  {replay / n * 1000:6.2f} ms each")
    print(f"  PaymentIntents made: {len(stub.StripeStub.intents)} (expected {2 * n}: none twice)")


if __name__ == "__main__":
    main()
