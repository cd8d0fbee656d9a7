"""The payment-link page and the checkout API under load on loopback, next to an HTTP floor.

Run by hand: ``python benchmarks/bench_server.py [--db URL] [--processes P] [--requests N]
[--concurrency C]``. It writes the coffee example (``abonnement init``) to a temporary
directory, makes an API key, starts ``uvicorn --factory abonnement.server.asgi:app`` with P
worker processes (use PostgreSQL for more than one), and drives it from C client threads:

- ``GET /l/coffee-monthly``: the payment-link page a buyer opens;
- ``POST /api/v1/checkouts``: buy the link as a contact with a test card, each request with an
  ``Idempotency-Key`` of its own, and one in ten replaying an earlier key (a client retry).

It prints requests/s, p50 and p99 latency for each, beside the floor: the same client against
a bare Starlette route on the same uvicorn settings that returns a page of the same size (what
HTTP, uvicorn and the client cost with no abonnement in it). Then it checks the books: one
subscription and one paid invoice per distinct key answered 201, exactly one succeeded charge
per invoice in the database and in the test processor's ledger, nothing charged twice.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa

LINK = "coffee-monthly"
SECRET = "bench-link-secret-" + "x" * 32  # every process signs and checks CSRF alike


def floor_app() -> object:
    """A Starlette app with one route answering a page as large as the link page: what the
    HTTP stack costs without abonnement (uvicorn imports it as ``bench_server:floor_app``)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    body = "<!doctype html>" + "x" * int(os.environ.get("BENCH_FLOOR_BYTES", "4000"))

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse(body)

    return Starlette(routes=[Route(f"/l/{LINK}", page)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(config: Path, db: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "abonnement", "--config", str(config), "--db", db, *args],
        check=True, capture_output=True, text=True, env=_env(config, db),
    )  # fmt: skip
    return out.stdout


def _env(config: Path, db: str) -> dict[str, str]:
    return {**os.environ, "ABONNEMENT_CONFIG": str(config), "ABONNEMENT_DATABASE_URL": db,
            "ABONNEMENT_LINK_SECRET": SECRET}  # fmt: skip


def _serve(
    target: str, processes: int, env: dict[str, str], cwd: Path
) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", target, "--port", str(port),
         "--workers", str(processes), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=cwd,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + f"/l/{LINK}", timeout=1).status_code < 500:
                return base, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"the server at {base} did not come up")


def _load(
    base: str, requests: int, concurrency: int, send: Callable[[httpx.Client, int], httpx.Response]
) -> tuple[float, list[float], list[httpx.Response]]:
    """``requests`` calls of ``send(client, i)`` from ``concurrency`` threads: wall seconds,
    latencies (s) and responses."""
    latencies: list[float] = []
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                response = send(client, i)
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
                    responses.append(response)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, responses


def _report(
    name: str, wall: float, latencies: list[float], floor: tuple[float, list[float]] | None
) -> None:
    n = len(latencies)
    cut = sorted(latencies)
    p99 = cut[max(0, int(n * 0.99) - 1)]
    line = (f"{name:<28} {n / wall:8.0f} req/s   p50 {statistics.median(cut) * 1000:7.1f} ms   "
            f"p99 {p99 * 1000:7.1f} ms")  # fmt: skip
    if floor:
        f_wall, f_lat = floor
        f_rate = len(f_lat) / f_wall
        line += f"   floor {f_rate:7.0f} req/s ({f_rate / (n / wall):.1f}x faster)"
    print(line, flush=True)


def _add_buyers(config_file: Path, count: int) -> None:
    """``count`` contacts ``buyer-0``… in the config, one per checkout."""
    text = config_file.read_text()
    buyers = "".join(
        f"  - {{id: buyer-{i}, name: Buyer {i}, email: buyer{i}@example.com}}\n"
        for i in range(count)
    )
    config_file.write_text(text.replace("\ncontacts:\n", "\ncontacts:\n" + buyers, 1))


def _books(db: str, ledger: Path, keys_answered: set[str]) -> None:
    """The books after the load: what was created and charged, and nothing twice."""
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        buyers = "contact_id LIKE 'buyer-%'"
        subs = conn.execute(
            sa.text(f"SELECT count(*) FROM subscriptions WHERE {buyers}")
        ).scalar_one()
        paid = conn.execute(
            sa.text(f"SELECT count(*) FROM invoices WHERE {buyers} AND status = 'paid'")
        ).scalar_one()
        succeeded = conn.execute(sa.text(
            "SELECT invoice_number, count(*) FROM payments WHERE status = 'succeeded'"
            " GROUP BY invoice_number HAVING count(*) > 1")).fetchall()  # fmt: skip
        payments = conn.execute(sa.text(
            "SELECT count(*) FROM payments WHERE status = 'succeeded'")).scalar_one()  # fmt: skip
    engine.dispose()
    with sqlite3.connect(ledger) as ledger_db:
        charged = ledger_db.execute(
            "SELECT count(*) FROM charges WHERE status = 'succeeded'").fetchone()[0]  # fmt: skip
    print(f"checkouts answered 201 (distinct keys): {len(keys_answered)}; subscriptions {subs}, "
          f"paid invoices {paid}, succeeded payments {payments}, ledger charges {charged}, "
          f"invoices charged twice {len(succeeded)}")  # fmt: skip
    ok = subs == paid == payments == charged == len(keys_answered) and not succeeded
    print("books: OK" if ok else "books: MISMATCH", flush=True)
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL URL (a schema of its own is made and dropped)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="GET requests (checkouts: 1/4)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.processes > 1 and not args.db:
        raise SystemExit("more than one server process needs PostgreSQL (--db)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = tmp_path / "shop"
        subprocess.run([sys.executable, "-m", "abonnement", "init", str(config)], check=True,
                       capture_output=True)  # fmt: skip
        checkouts = max(1, args.requests // 4)
        _add_buyers(config / "abonnement.yaml", checkouts)
        schema = None
        if args.db:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with sa.create_engine(args.db).begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            db = f"{args.db}{'&' if '?' in args.db else '?'}options=-csearch_path%3D{schema}"
        else:
            db = f"sqlite:///{config / 'abonnement.db'}"
        try:
            _cli(config, db, "db", "upgrade")
            key = _cli(config, db, "api-keys", "create", "bench").strip()
            env = _env(config, db)
            where = f"{'PostgreSQL' if args.db else 'SQLite'}, {args.processes} process(es), " \
                    f"{args.concurrency} client threads"  # fmt: skip
            print(f"# {where}", flush=True)

            floor_base, floor_proc = _serve("bench_server:floor_app", args.processes,
                                            {**env, "PYTHONPATH": str(Path(__file__).parent)},
                                            Path(__file__).parent)  # fmt: skip
            try:
                page_size = len(httpx.get(f"{floor_base}/l/{LINK}").content)
                f_wall, f_lat, _ = _load(floor_base, args.requests, args.concurrency,
                                         lambda c, i: c.get(f"/l/{LINK}"))  # fmt: skip
            finally:
                floor_proc.terminate()
                floor_proc.wait()

            base, proc = _serve("abonnement.server.asgi:app", args.processes, env, config)
            try:
                size = len(httpx.get(f"{base}/l/{LINK}").content)
                wall, lat, responses = _load(base, args.requests, args.concurrency,
                                             lambda c, i: c.get(f"/l/{LINK}"))  # fmt: skip
                bad = [r.status_code for r in responses if r.status_code != 200]
                _report(f"GET /l/{LINK}", wall, lat, (f_wall, f_lat))
                print(f"  (page {size} bytes, floor page {page_size}; non-200: {len(bad)})")

                headers = {"Authorization": f"Bearer {key}"}

                def checkout(client: httpx.Client, i: int) -> httpx.Response:
                    # a buyer of its own per key; one in ten replays an earlier request, as a
                    # client retrying after a lost answer would
                    n = i // 2 if i % 10 == 9 else i
                    body = {"link_id": LINK, "contact_id": f"buyer-{n}", "card": "tok_visa"}
                    keyed = {**headers, "Idempotency-Key": f"bench-{n}"}
                    return client.post("/api/v1/checkouts", json=body, headers=keyed)

                wall, lat, responses = _load(base, checkouts, args.concurrency, checkout)
                _report("POST /api/v1/checkouts", wall, lat, None)
                statuses: dict[int, int] = {}
                for r in responses:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                print(f"  statuses: {dict(sorted(statuses.items()))}")
                answered = {
                    r.request.headers["idempotency-key"] for r in responses if r.status_code == 201
                }
            finally:
                proc.terminate()
                proc.wait()
            _books(db, config / "test-processor-ledger.db", answered)
        finally:
            if schema:
                with sa.create_engine(args.db).begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
