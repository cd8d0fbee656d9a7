"""The SQL storage on SQLite and PostgreSQL: exact money, gap-free numbers, idempotence."""

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.pricing import LineInput, price_invoice
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.sql import SqlStorage, StorageError
from tests.conftest import run

USD = "USD"


def sub(sub_id: str = "s1", price: str = "0.123456") -> Subscription:
    item = Item("Thing", 3, Money(Decimal(price), USD), frequency=Frequency.parse("monthly"))
    return Subscription(sub_id, "bob", USD, Frequency.parse("monthly"), date(2026, 12, 1), (item,))


def draft(sub_id: str, day: date, amount: str = "10.00") -> InvoiceDraft:
    money = Money(Decimal(amount), USD)
    priced = price_invoice([LineInput("Thing", 1, money, money)], {}, currency=USD)
    return InvoiceDraft(
        sub_id, "bob", USD, day, day, day, day, priced, line_subscriptions=(sub_id,)
    )


def test_money_round_trips_exactly_and_is_stored_as_integers(db_url):
    store = SqlStorage(db_url)
    store.insert_subscriptions([sub()], "declared")
    (loaded,) = store.subscriptions()
    assert loaded.items[0].unit_price == Money(Decimal("0.123456"), USD)
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT unit_price FROM subscription_items")).scalar_one()
    assert raw == 123456 and isinstance(raw, int)


def test_more_than_six_decimals_are_refused(db_url):
    store = SqlStorage(db_url)
    with pytest.raises(sa.exc.StatementError, match="more than 6 decimals"):
        store.insert_subscriptions([sub(price="0.1234567")], "declared")


def test_numbers_stay_gap_free_when_a_batch_fails(db_url):
    store = SqlStorage(db_url)
    store.insert_subscriptions([sub("a"), sub("b")], "declared")
    fmt = "INV-{seq:05d}"
    assert store.commit([], [draft("a", date(2026, 12, 1))], [], fmt) == ["INV-00001"]
    # the same period again violates (subscription, period_start): the whole batch rolls back
    with pytest.raises(sa.exc.IntegrityError):
        store.commit([], [draft("b", date(2026, 12, 1)), draft("a", date(2026, 12, 1))], [], fmt)
    assert store.commit([], [draft("b", date(2026, 12, 1))], [], fmt) == ["INV-00002"]
    assert [i.number for i in store.invoices()] == ["INV-00001", "INV-00002"]


def test_events_carry_a_sequence_per_subscription(db_url):
    store = SqlStorage(db_url)
    store.insert_subscriptions([sub("a")], "declared", [Event("subscription.created", "a",
                               date(2026, 12, 1), seq=1)])  # fmt: skip
    store.commit([], [], [Event("invoice.created", "a", date(2026, 12, 1), seq=2)], "{seq}")
    with pytest.raises(sa.exc.IntegrityError):
        store.commit([], [], [Event("invoice.created", "a", date(2026, 12, 1), seq=2)], "{seq}")
    assert [(e.type, e.seq) for e in store.events("a")] == [
        ("subscription.created", 1),
        ("invoice.created", 2),
    ]


def test_db_upgrade_and_an_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE unrelated (x INTEGER)"))
    with pytest.raises(StorageError, match="run `abonnement db upgrade`"):
        SqlStorage(url)
    result = run("--db", url, "db", "upgrade")
    from alembic.script import ScriptDirectory

    from abonnement.plugins.storage.sql import alembic_config

    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
    assert result.exit_code == 0 and f"database at migration {head}\n" == result.stdout
    assert SqlStorage(url).subscriptions() == []
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {table.name for table in t.metadata.sorted_tables} <= tables


def test_upgrading_from_0003_keeps_invoice_lines_and_adjustments(tmp_path):
    # 0004 rebuilds both tables on SQLite (WITHOUT ROWID): their rows must come along.
    from alembic import command

    from abonnement.plugins.storage.sql import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(url).begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
    old = SqlStorage(url, migrate=False)
    _insert_before_0009(old, [sub()])
    day, money = date(2026, 12, 1), Money(Decimal("12.50"), USD)
    priced = price_invoice([LineInput("Thing", 1, money, money)], {}, currency=USD)
    (number,) = old.commit([], [InvoiceDraft("s1", "bob", USD, day, day, day, day, priced)],
                           [], "INV-{seq:04d}")  # fmt: skip
    # its discount as storage wrote adjustments before 0014 (no taxable amount column)
    with old.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO invoice_adjustments (invoice_number, position, line_position, kind, "
            "rule, label, rate, inclusive, amount) VALUES (:n, 0, 0, 'discount', "
            "'unit_discount', 'Unit discount', 10000000, false, 1250000)"), {"n": number})  # fmt: skip
    assert run("--db", url, "db", "upgrade").exit_code == 0
    after = SqlStorage(url).invoice(number)
    assert [line.amount for line in after.lines] == [Money(Decimal("12.50"), USD)]
    assert [(a.kind, a.amount) for a in after.adjustments] == [
        ("discount", Money(Decimal("1.25"), USD))
    ]
    with sa.create_engine(url).connect() as conn:
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'invoice_lines'")
        assert "WITHOUT ROWID" in ddl.scalar_one()


def test_upgrading_to_0005_links_stored_purchase_invoices_to_their_lines_subscriptions(tmp_path):
    from alembic import command

    from abonnement.plugins.storage.sql import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(url).begin() as conn:
        command.upgrade(alembic_config(conn), "0004")
    old = SqlStorage(url, migrate=False)
    _insert_before_0009(old, [sub("p-1"), sub("p-2"), sub("s3")])
    day, money = date(2026, 12, 1), Money(Decimal("5.00"), USD)
    priced = price_invoice([LineInput(f"Line {i}", 1, money, money) for i in range(4)], {},
                           currency=USD)  # fmt: skip
    purchase = InvoiceDraft(None, "bob", USD, day, day, None, None, priced,
                            line_subscriptions=(None, "p-2", "p-1", "p-2"))  # fmt: skip
    renewal = draft("s3", day)
    bought, renewed = old.commit([], [purchase, renewal], [], "INV-{seq:04d}")
    assert run("--db", url, "db", "upgrade").exit_code == 0
    new = SqlStorage(url)
    assert (new.invoice_owners(bought), new.invoice_owners(renewed)) == (["p-2", "p-1"], ["s3"])
    assert [i.number for i in new.invoices("p-1")] == [bought]
    assert [i.number for i in new.invoices("s3")] == [renewed]


def _insert_before_0009(
    store: SqlStorage, subs: list[Subscription], source: str = "declared"
) -> None:
    """Subscriptions written as storage did before 0009 (no reminder lead column)."""
    from abonnement.plugins.storage.subscriptions import item_rows, subscription_row

    rows = [subscription_row(s, source) for s in subs]
    for row in rows:
        del row["reminder_days"]
    with store.engine.begin() as conn:
        conn.execute(t.subscriptions.insert(), rows)
        conn.execute(t.subscription_items.insert(), [r for s in subs for r in item_rows(s)])


def test_an_unreachable_database_is_a_clean_error(spec_config):
    result = run("--config", str(spec_config), "--db",
                 "postgresql+psycopg://nobody@127.0.0.1:1/none", "subscriptions", "list")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot open the database")


def test_the_migrations_build_exactly_the_schema_of_tables_py(db_url):
    # A change to tables.py without a migration fails here, on SQLite and PostgreSQL.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = SqlStorage(db_url)
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert differences == []


def test_a_loaded_subscription_has_every_field_and_equals_the_stored_one(db_url):
    import dataclasses

    store = SqlStorage(db_url)
    stored = dataclasses.replace(
        sub("full"), status="active", next_index=2, owner="ops", properties={"roast": "dark"},
        deals=("deal-42",), quote_id="q-7", created_on=date(2026, 11, 20), skipped=1,
        cancel_on=date(2027, 3, 1), reminded=2, rebase_on=date(2027, 1, 15), rebase_index=2,
        pending=(Item("Credit", 1, Money(Decimal("-4.50"), "USD")),),
    )  # fmt: skip
    store.insert_subscriptions([stored], "declared")
    loaded = store.subscription("full")
    assert set(loaded.__dict__) == {f.name for f in dataclasses.fields(Subscription)}
    assert loaded == stored


class _UnseenProcessor:
    """Charges every key; asked about one, has not seen it (its charge call is yet to come)."""

    def __init__(self):
        self.charged: list[str] = []

    def charge(self, *, amount, token, idempotency_key, on):
        from abonnement.engine.collection import ChargeResult

        self.charged.append(idempotency_key)
        return ChargeResult("succeeded", "ch_1")

    def lookup(self, *, idempotency_key, on):
        return None


def _pending_attempt(db_url):
    """A store with one invoice whose first attempt is committed pending, not yet charged."""
    from abonnement.engine.catalog import Settings
    from abonnement.engine.collection import first_attempt

    store = SqlStorage(db_url)
    day = date(2026, 12, 1)
    store.insert_subscriptions([sub("a")], "declared")
    (number,) = store.commit([], [draft("a", day)], [], "INV-{seq:05d}")
    attempt = first_attempt(number, "a", Money(Decimal("10.00"), USD), "tok_visa", "card", day)
    store.begin_attempts([attempt])
    return store, attempt, Settings("Test", ("USD",), "USD"), day


def test_a_reconciliation_leaves_a_charge_in_flight_alone(db_url):
    """Another process reconciles while a charge is at the processor: it must not take the
    live attempt for one a crash left (recorded unsent, the invoice would be charged again).
    PostgreSQL skips the held rows; SQLite waits for the charge to be recorded."""
    import threading

    from abonnement.engine.billing_run import charge, reconcile

    class Processor(_UnseenProcessor):
        def __init__(self):
            super().__init__()
            self.called, self.answer = threading.Event(), threading.Event()

        def charge(self, **kwargs):
            self.called.set()
            assert self.answer.wait(10)
            return super().charge(**kwargs)

    store, attempt, settings, day = _pending_attempt(db_url)
    processor = Processor()
    charging = threading.Thread(target=charge, args=(store, processor, [attempt], settings, day))
    charging.start()
    assert processor.called.wait(10)
    reconciled: list = []
    other = threading.Thread(target=lambda: reconciled.extend(
        reconcile(SqlStorage(db_url), processor, settings)))  # fmt: skip
    other.start()
    other.join(0.5)  # PostgreSQL: done, having skipped it; SQLite: waiting
    processor.answer.set()
    charging.join(10)
    other.join(10)
    assert reconciled == [] and processor.charged == [attempt.key]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(t.payments.c.status)).scalars().all() == ["succeeded"]


def test_an_attempt_a_reconciliation_recorded_meanwhile_is_not_charged(db_url):
    """A worker commits an attempt pending and only then holds it; a run reconciling in
    between finds nothing at the processor and records it unsent. The worker must not charge
    it after all: the invoice is tried again under a new key, so it is charged once."""
    from abonnement.engine.billing_run import charge, reconcile

    store, attempt, settings, day = _pending_attempt(db_url)
    processor = _UnseenProcessor()
    assert [a.key for a, result, _ in reconcile(store, processor, settings)] == [attempt.key]
    assert charge(store, processor, [attempt], settings, day) == []
    assert processor.charged == []
    with store.engine.connect() as conn:
        status, code = conn.execute(sa.select(t.payments.c.status, t.payments.c.failure_code)).one()
        collect_on = conn.execute(sa.select(t.invoices.c.collect_on)).scalar_one()
    assert (status, code, collect_on) == ("failed", "not_sent", day)  # tried again today


def test_sql_storage_keeps_the_storage_contract():
    # Every method of engine.ports.Storage exists on SqlStorage with the same parameters
    # (names, kinds, defaults), and the built-in plugin's object passes the runtime check.
    import inspect

    from abonnement.engine import ports

    contract = {
        name: member
        for proto in (ports.SubscriptionStore, ports.BillingStore, ports.CollectionStore,
                      ports.InvoiceStore, ports.OutboxStore, ports.DeclaredStore, ports.LinkStore,
                      ports.SchemaStore)
        for name, member in vars(proto).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }  # fmt: skip
    assert (
        len(contract) == 67
    )  # 0011: five for claimed deliveries; 0012: two digests; 0014: credit notes
    for name, member in contract.items():
        ours = getattr(SqlStorage, name, None)
        assert ours is not None, f"SqlStorage has no {name}"
        if isinstance(member, property):
            assert isinstance(ours, property), name
            continue

        def shape(function):
            return [
                (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
            ]

        assert shape(ours) == shape(member), name
    store = SqlStorage("sqlite://")
    assert isinstance(store, ports.Storage)
    assert (store.url, store.concurrent_billing) == ("sqlite://", False)
