"""The composition root: plugins + config + storage → the operations commands call.

Used alike by the CLI, the tests and Python callers; nothing here is global. Heavy modules
(schemas, parsers, SQLAlchemy) load on first use so `abonnement --help` starts at once. This
is the only place that reads the wall clock (``today``), in the account's time zone; every
operation takes its date as an argument.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from abonnement.errors import AbonnementError

if TYPE_CHECKING:
    from abonnement.config.loader import Config
    from abonnement.engine.billing_run import RunSummary
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.purchase import Summary
    from abonnement.engine.subscriptions import Subscription
    from abonnement.plugins.manager import Plugins
    from abonnement.rules.ruleset import RuleSet

__all__ = ["DEFAULT_DATABASE_URL", "App"]

DEFAULT_DATABASE_URL = "sqlite:///abonnement.db"


@contextmanager
def _long_run() -> Iterator[None]:
    """A billing run makes millions of short-lived objects that reference counting frees,
    and the cyclic collector's passes over everything that lives long (config, rules, the
    run's caches) cost it 10-15%: those are frozen out of the passes, and the youngest
    generation is collected every 10,000 allocations instead of 700."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@dataclass
class App:
    """One config directory and one database, with the plugins loaded once."""

    config_dir: Path
    database_url: str = DEFAULT_DATABASE_URL
    _plugins: Plugins | None = field(default=None, repr=False)

    @cached_property
    def plugins(self) -> Plugins:
        from abonnement.plugins.manager import Plugins

        return self._plugins or Plugins.load()

    @cached_property
    def config(self) -> Config:
        """The validated config and its rules; raises ``ConfigError`` with every problem."""
        from abonnement.config.loader import load

        return load(self.config_dir, self.plugins.names())

    @property
    def catalog(self) -> Catalog:
        return self.config.catalog

    @property
    def rules(self) -> RuleSet:
        return self.config.rules

    @cached_property
    def storage(self) -> Any:
        store = self.plugins.open_storage(self.database_url)
        settings = self.catalog.settings
        store.reminder_days = settings.reminder_days_before if settings.reminder_enabled else None
        return store

    @cached_property
    def processor(self) -> Any:
        """The configured payment processor plugin, with its own settings block."""
        settings = self.catalog.settings
        cls = self.plugins.processors[settings.processor]
        return cls(dict(settings.plugin_settings.get(f"payments.{settings.processor}", {})))

    def today(self) -> date:
        """Today in the account's time zone (UTC before the config is read)."""
        return datetime.now(ZoneInfo(self.catalog.settings.timezone)).date()

    # -- operations ---------------------------------------------------------------------------
    def apply(self, as_of: date) -> dict[str, list[str]]:
        """Create or update the declared subscriptions (by id); running it twice changes nothing."""
        from abonnement.engine.events import numbered
        from abonnement.engine.purchase import from_declared
        from abonnement.engine.subscriptions import mrr_basis

        catalog = self.catalog
        wanted = [from_declared(d, catalog, as_of) for d in catalog.subscriptions.values()]
        store = self.storage
        existing = {s.id: s for s in store.subscriptions()} if wanted else {}
        created = [replace(s, event_seq=1) for s in wanted if s.id not in existing]
        changed = []
        for sub in wanted:
            old = existing.get(sub.id)
            if old is None:
                continue
            # What the config leaves open (an owner, a property) a workflow may have set: the
            # declaration overrides only what it says.
            sub = replace(sub, owner=sub.owner or old.owner,
                          properties={**old.properties, **sub.properties})  # fmt: skip
            if _definition(old) != _definition(sub):
                # the definition changes from the next cycle; billing state stays as it is
                changed.append(replace(
                    old, items=sub.items, properties=sub.properties, owner=sub.owner,
                    payment_method_id=sub.payment_method_id, event_seq=old.event_seq + 1,
                ))  # fmt: skip
        store.insert_subscriptions(created, "declared", [
            e for s in created for e in numbered(s.id, as_of, 0, ("subscription.created",
                                                                  mrr_basis(s)))
        ])  # fmt: skip
        store.replace_items(changed, [
            e for s in changed for e in numbered(s.id, as_of, s.event_seq - 1,
                                                 ("subscription.changed", mrr_basis(s)))
        ])  # fmt: skip
        changed_ids = {s.id for s in changed}
        return {
            "created": [s.id for s in created],
            "updated": sorted(changed_ids),
            "unchanged": [s.id for s in wanted if s.id in existing and s.id not in changed_ids],
        }

    def run(
        self,
        until: date,
        *,
        dry_run: bool = False,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        apply_on: date | None = None,
    ) -> tuple[RunSummary, list[dict[str, Any]]]:
        """The billing run up to ``until``; with ``dry_run`` the same run, rolled back, and
        nothing sent to the processor. A dry run given ``apply_on`` applies the declared
        subscriptions first, inside what is rolled back (``summary.applied``).
        Returns the summary and, for a dry run, every invoice it would have issued."""
        from abonnement.engine.billing_run import run_billing

        store = self.storage
        args = (store, self.catalog, self.rules.pricing, until)
        from abonnement.engine.invoicing import PricingMemo

        rules = self.rules
        memo = PricingMemo(rules.fields, rules.counts_payments) if rules.memoizable else None
        options = {"batch_size": batch_size, "progress": progress,
                   "with_mrr": rules.reads("subscription", "mrr"),
                   "processor": self.processor, "memo": memo,
                   "taxes": self.plugins.automatic_tax(self.catalog.settings)}  # fmt: skip
        if not dry_run:
            with _long_run():
                return run_billing(*args, **options), []
        # A dry run rolls the database back, but a processor cannot be rolled back: no charges.
        options["processor"] = None
        with store.dry_run(), _long_run():
            applied = self.apply(apply_on) if apply_on is not None else {}
            summary = run_billing(*args, keep_invoices=True, **options)
            summary.applied = applied
            invoices = [store.invoice(number) for number, _ in summary.invoices]
        return summary, invoices

    def segment(self, name: str, on: date) -> tuple[str, list[Any]]:
        """The members of segment ``name`` on ``on``: ``("subscriptions", [Subscription…])``
        or ``("contacts", [Contact…])`` (F27)."""
        from abonnement.config.schemas import did_you_mean
        from abonnement.engine.billing_run import contact_records
        from abonnement.engine.invoicing import rule_context

        segment = self.rules.segments.get(name)
        if segment is None:
            hint = did_you_mean(name, list(self.rules.segments)) or "segments are rule blocks"
            raise AbonnementError(f"no segment `{name}`; {hint}")
        catalog, settings = self.catalog, self.catalog.settings
        with_mrr = self.rules.reads("subscription", "mrr")
        if segment.of == "contacts":
            members = [
                contact for contact in catalog.contacts.values()
                if segment.where({**contact_records(catalog, contact.id), "today": on})
            ]  # fmt: skip
            return "contacts", members
        subs = []
        for sub in self.storage.subscriptions():
            records = contact_records(catalog, sub.contact_id, company_id=sub.company_id,
                                      billing_contact_id=sub.billing_contact_id)  # fmt: skip
            if segment.where(rule_context(sub, records, settings, on, with_mrr=with_mrr)):
                subs.append(sub)
        return "subscriptions", subs

    def notify(self, on: date) -> dict[str, int]:
        """Work the outbox: workflow triggers on the new events, then every message due on
        ``on`` through the notifiers. Never called inside a dry run: a sent e-mail stays sent."""
        import os

        from abonnement.outbox import process_outbox

        return process_outbox(self, on, link_secret=os.environ.get("ABONNEMENT_LINK_SECRET"))

    def forecast(self, as_of: date, months: int) -> list[dict[str, Any]]:
        """The invoices the next ``months`` months will issue, by month and currency: the
        billing run itself (declared subscriptions applied), rolled back, charging nobody."""
        from datetime import timedelta

        from abonnement.engine.billing_run import run_billing
        from abonnement.engine.schedule import add_months

        until = add_months(as_of, months) - timedelta(days=1)
        store = self.storage
        with store.dry_run(), _long_run():
            self.apply(as_of)
            taxes = self.plugins.automatic_tax(self.catalog.settings)
            summary = run_billing(store, self.catalog, self.rules.pricing, until,
                                  keep_invoices=True, taxes=taxes)  # fmt: skip
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for _, draft in summary.invoices:
            key = (draft.issue_date.strftime("%Y-%m"), draft.currency)
            row = rows.setdefault(key, {"month": key[0], "currency": key[1], "invoices": 0,
                                        "total": draft.total * 0})  # fmt: skip
            row["invoices"] += 1
            row["total"] = row["total"] + draft.total
        return [{**row, "total": row["total"].format_amount()} for _, row in sorted(rows.items())]

    def run_workers(self, until: date, workers: int, *, batch_size: int = 500) -> tuple[Any, list]:
        """The billing run in ``workers`` processes sharing the work through row locks."""
        import multiprocessing

        if getattr(self.storage, "sqlite", False):
            raise AbonnementError("SQLite takes one worker at a time; use PostgreSQL for --workers")
        context = multiprocessing.get_context("spawn")
        args = [(str(self.config_dir), self.database_url, until, batch_size)] * workers
        with context.Pool(workers) as pool:
            summaries = pool.starmap(_worker, args)
        total = summaries[0]
        for other in summaries[1:]:
            total.invoice_count += other.invoice_count
            total.subscriptions += other.subscriptions
            for currency, money in other.totals.items():
                total.totals[currency] = (
                    total.totals[currency] + money if (currency in total.totals) else money
                )
            for key, count in other.status_changes.items():
                total.status_changes[key] = total.status_changes.get(key, 0) + count
            for key, count in other.payments.items():
                total.payments[key] = total.payments.get(key, 0) + count
        return total, []

    def quote(
        self,
        contact_id: str,
        items: Sequence[tuple[str, int]],
        purchase: date,
        *,
        start: date | None = None,
        payments: int | None = None,
    ) -> Summary:
        """The summary of ``contact_id`` buying ``items`` (product id, quantity) on ``purchase``."""
        from abonnement.engine.billing_run import contact_records
        from abonnement.engine.catalog import ItemSpec, Terms
        from abonnement.engine.items import resolve_item
        from abonnement.engine.purchase import summarize
        from abonnement.engine.schedule import OnDate

        catalog = self.catalog
        if contact_id not in catalog.contacts:
            raise AbonnementError(f"unknown contact `{contact_id}`")
        currency = catalog.settings.default_currency
        resolved = []
        for product_id, quantity in items:
            if product_id not in catalog.products:
                raise AbonnementError(f"unknown product `{product_id}`")
            resolved.append(resolve_item(
                ItemSpec(product=product_id, quantity=quantity), catalog, currency,
                terms=Terms(payments) if payments else None,
                start=OnDate(start) if start else None,
            ))  # fmt: skip
        if not resolved:
            raise AbonnementError("a quote needs at least one --item")
        ctx = {**contact_records(catalog, contact_id), "today": purchase}
        taxes = self.plugins.automatic_tax(catalog.settings)
        return summarize(resolved, purchase, ctx, self.rules.pricing, catalog.settings,
                         catalog.tax_rates, taxes)  # fmt: skip

    # -- collection ----------------------------------------------------------------------------
    def checkout(
        self,
        link_id: str,
        contact_id: str,
        on: date,
        *,
        card: str | None = None,
        payment_method_id: str | None = None,
    ) -> dict[str, Any]:
        """Buy a payment link as ``contact_id`` on ``on``: one invoice and one charge for what
        is due now, then the grouped subscriptions (F22). Safe to repeat after a crash: the
        charge has a fixed idempotency key and the result is stored in one transaction."""
        from abonnement.errors import CollectionError

        catalog, settings = self.catalog, self.catalog.settings
        link = catalog.payment_links.get(link_id)
        contact = catalog.contacts.get(contact_id)
        if link is None or contact is None:
            raise CollectionError(f"unknown {'payment link' if link is None else 'contact'} "
                                  f"`{link_id if link is None else contact_id}`")  # fmt: skip
        method = self._method(contact_id, card, payment_method_id)
        if method is None:
            raise CollectionError("checkout needs --card TOKEN or a saved --payment-method")
        accepted = link.accepted_methods or settings.accepted_methods
        if method[1] not in accepted:
            raise CollectionError(f"this link takes {', '.join(accepted)}, not {method[1]}")
        key, prefix = f"checkout/{link_id}/{contact_id}/{on.isoformat()}", f"{link_id}-{contact_id}"
        return self._purchase(
            key, f"{prefix}-{on:%Y%m%d}", contact_id, link.items,
            link.currency or settings.default_currency, on, method,
            deals=link.deals, save_method=link.save_payment_method,
        )  # fmt: skip

    def convert(
        self,
        kind: str,
        record_id: str,
        on: date,
        *,
        card: str | None = None,
        payment_method_id: str | None = None,
    ) -> dict[str, Any]:
        """Create the subscriptions of a published quote or of a deal's line items (F22, S12):
        what is due now is charged when a method is given, else invoiced with payment terms."""
        from abonnement.errors import CollectionError

        catalog = self.catalog
        if kind == "quote":
            quote = catalog.quotes.get(record_id)
            if quote is None:
                raise CollectionError(f"no quote `{record_id}`")
            if quote.status != "published":
                raise CollectionError(f"quote `{record_id}` is {quote.status}; publish it first")
            deal = catalog.deals.get(quote.deal or "")
            contact_id, specs, currency = quote.contact, quote.items, quote.currency
            company = quote.company or (deal.company if deal else None)
            deals, quote_id = ((quote.deal,) if quote.deal else ()), quote.id
        else:
            deal = catalog.deals.get(record_id)
            if deal is None:
                raise CollectionError(f"no deal `{record_id}`")
            if not deal.contact or not deal.items:
                raise CollectionError(f"deal `{record_id}` needs a contact and line items")
            contact_id, specs, currency = deal.contact, deal.items, None
            company, deals, quote_id = deal.company, (deal.id,), None
        method = self._method(contact_id, card, payment_method_id)
        return self._purchase(
            f"convert/{kind}/{record_id}", record_id, contact_id, specs,
            currency or catalog.settings.default_currency, on, method,
            deals=deals, quote_id=quote_id, company_id=company, source=kind,
        )  # fmt: skip

    def _method(
        self, contact_id: str, card: str | None, payment_method_id: str | None
    ) -> tuple[str, str] | None:
        """(token, type) to charge: a card token, or a method the contact saved."""
        from abonnement.errors import CollectionError

        if card:
            return card, "card"
        if payment_method_id is None:
            return None
        contact = self.catalog.contacts.get(contact_id)
        saved = contact.payment_methods if contact else ()
        method = next((m for m in saved if m.id == payment_method_id), None)
        if method is None:
            raise CollectionError(f"contact `{contact_id}` has no payment method "
                                  f"`{payment_method_id}`")  # fmt: skip
        return method.token, method.type

    def _purchase(
        self,
        key: str,
        prefix: str,
        contact_id: str,
        specs: Sequence[Any],
        currency: str,
        on: date,
        method: tuple[str, str] | None,
        *,
        deals: tuple[str, ...] = (),
        quote_id: str | None = None,
        company_id: str | None = None,
        save_method: bool = True,
        source: str = "checkout",
    ) -> dict[str, Any]:
        """One invoice for everything due now — charged with ``method``, or left open with
        the account's payment terms — and the grouped subscriptions, stored at once."""
        import hashlib

        from abonnement.engine.billing_run import charge_once, contact_records
        from abonnement.engine.collection import Attempt
        from abonnement.engine.invoicing import InvoiceDraft, document_settings, line_inputs
        from abonnement.engine.items import group_items, resolve_item
        from abonnement.engine.pricing import price_invoice
        from abonnement.engine.subscriptions import Subscription, due_date
        from abonnement.engine.taxes import buyer_location
        from abonnement.errors import CollectionError

        catalog, settings = self.catalog, self.catalog.settings
        contact = catalog.contacts.get(contact_id)
        if contact is None:
            raise CollectionError(f"unknown contact `{contact_id}`")
        token, kind = method if method else (None, None)
        terms = "due_on_receipt" if method else settings.invoices.payment_terms
        items = [resolve_item(spec, catalog, currency) for spec in specs]
        one_time, groups = group_items(items, on)
        now_items = list(one_time)
        owners: list[str | None] = [None] * len(one_time)
        subs = []
        for k, group in enumerate(groups, start=1):
            started = group.start_date <= on
            sub = Subscription(
                id=f"{prefix}-{k}", contact_id=contact_id,
                currency=currency, frequency=group.frequency, anchor=group.start_date,
                items=group.items, status="active" if started else "scheduled",
                payments=group.terms.payments, next_index=1 if started else 0,
                company_id=company_id or contact.company,
                collection_mode="automatic" if method else "manual",
                payment_token=token if save_method else None, payment_type=kind,
                payment_terms=terms, deals=deals, quote_id=quote_id, created_on=on,
                event_seq=2 if started else 1,
                open_due_on=due_date(on, terms) if started and not method else None,
            )  # fmt: skip
            subs.append(sub)
            if started:
                now_items.extend(group.items)
                owners.extend([sub.id] * len(group.items))
        existing = self.storage.subscription(subs[0].id) if subs else None
        if existing is not None:
            raise CollectionError(f"already done on {existing.created_on}: `{existing.id}` exists")
        ctx = {**contact_records(catalog, contact_id),
               "payment": {"method": kind or "manual", "attempt": 1}, "today": on}  # fmt: skip
        lines = line_inputs(now_items, catalog.tax_rates)
        taxes = self.plugins.automatic_tax(settings)
        priced = price_invoice(lines, ctx, self.rules.pricing, currency=currency,
                               rounding=settings.rounding,
                               line_taxes=taxes.line_taxes(buyer_location(ctx), lines)
                               if taxes else None)  # fmt: skip
        attempt = result = None
        if method:
            minimum = settings.minimum_charge_for(currency)
            if priced.total < minimum:
                raise CollectionError(f"a purchase must charge at least {minimum} now")
            # The key repeats only for the same purchase with the same method, so a rerun after
            # a crash finds the charge it made, while another card after a decline is a new try.
            card_digest = hashlib.sha256(token.encode()).hexdigest()[:12]
            attempt = Attempt(f"{key}/{card_digest}", None, 1, priced.total, token, kind, on)
            result = charge_once(self.processor, attempt)
            if result is None or result.status == "failed":
                code = result.failure_code if result else "timeout"
                raise CollectionError(f"the payment was declined ({code}); nothing was bought")
        draft = InvoiceDraft(
            None, contact_id, currency, on, due_date(on, terms), None, None, priced,
            line_subscriptions=tuple(owners), document=document_settings(settings, None),
        )  # fmt: skip
        number = self.storage.record_checkout(subs, draft, attempt, result, on,
                                              settings.invoices.number_format, source)  # fmt: skip
        return {"invoice": number, "subscriptions": [s.id for s in subs],
                "payment": result.status if result else None,
                "total": priced.total.format_amount(), "currency": currency}  # fmt: skip

    def create_subscription(self, decl: Any, on: date) -> Subscription:
        """A subscription from scratch (F22): checked like a declared one, then created."""
        from abonnement.engine.events import numbered
        from abonnement.engine.purchase import from_declared
        from abonnement.engine.subscriptions import mrr_basis

        _check_new(decl, self.catalog)
        defaults = {p.name: p.default for p in self.catalog.settings.custom_properties
                    if p.default is not None}  # fmt: skip
        decl = replace(decl, properties={**defaults, **decl.properties})
        if self.storage.subscription(decl.id) is not None:
            raise AbonnementError(f"subscription `{decl.id}` exists already")
        sub = replace(from_declared(decl, self.catalog, on), event_seq=1)
        created = numbered(sub.id, on, 0, ("subscription.created", mrr_basis(sub)))
        self.storage.insert_subscriptions([sub], "created", created)
        return sub

    def edit_subscription(self, sub_id: str, on: date, **changes: Any) -> Subscription:
        """Edit items, payment method, contact or properties (F20); see ``engine.edits``."""
        from abonnement.config.settings import property_value_problem
        from abonnement.engine.edits import edit

        catalog = self.catalog
        method_id = changes.pop("payment_method_id", None)
        contact_id = changes.get("contact_id")
        if contact_id is not None and contact_id not in catalog.contacts:
            raise AbonnementError(f"no contact `{contact_id}`")

        def change(sub: Subscription) -> Any:
            payment = None
            if method_id is not None:
                owner = catalog.contacts.get(sub.billing_contact_id or sub.contact_id)
                saved = {m.id: m for m in owner.payment_methods} if owner else {}
                if method_id not in saved:
                    raise AbonnementError(f"contact `{owner.id if owner else '?'}` has no payment "
                                          f"method `{method_id}`")  # fmt: skip
                payment = (method_id, saved[method_id].token, saved[method_id].type)

            def problem(prop: Any, value: Any) -> str | None:
                found = property_value_problem(prop, value)
                return found[0] if found else None

            return edit(sub, on, catalog.settings, payment=payment, check_property=problem,
                        **changes)  # fmt: skip

        return self.storage.change(sub_id, change)

    def delete_subscription(self, sub_id: str) -> None:
        """Only an expired or canceled subscription is deleted (F22); invoices stay."""
        sub = self.storage.subscription(sub_id)
        if sub is None:
            raise AbonnementError(f"no subscription `{sub_id}`")
        if sub.status not in ("expired", "canceled"):
            raise AbonnementError(f"subscription `{sub_id}` is {sub.status}; only an expired or "
                                  "canceled subscription is deleted (cancel it first)")  # fmt: skip
        self.storage.delete_subscription(sub_id)

    def render_invoice(self, number: str, fmt: str = "html") -> bytes:
        """The customer-facing document of invoice ``number``: HTML text or PDF bytes."""
        from abonnement.documents.invoice import render_html, render_pdf

        row = self.storage.invoice(number)
        if row is None:
            raise AbonnementError(f"no invoice {number}")
        sub = self.storage.subscription(row["subscription_id"]) if row["subscription_id"] else None
        html = render_html(row, self.catalog, subscription=sub,
                           template_dir=self.config_dir / "templates")  # fmt: skip
        return render_pdf(html) if fmt == "pdf" else html.encode()

    def update_link(self, subscription_id: str, on: date) -> dict[str, str]:
        from abonnement.engine.update_links import link

        if self.storage.subscription(subscription_id) is None:
            raise AbonnementError(f"no subscription `{subscription_id}`")
        days = self.catalog.settings.update_link_days
        token, url, expires = link(subscription_id, on, days, _link_secret())
        return {"token": token, "url": url, "expires_at": expires.isoformat()}

    def update_payment_method(self, token: str, card: str, on: date) -> dict[str, Any]:
        """Save the new card and collect every open invoice of the subscription at once."""
        from abonnement.engine.billing_run import collect
        from abonnement.engine.update_links import verify

        sub_id = verify(token, _link_secret(), on)
        self.storage.set_payment_method(sub_id, card, "card")
        attempts = self.storage.open_invoices(sub_id, on)
        finished = collect(self.storage, self.processor, attempts, self.catalog.settings, on)
        return {"subscription": sub_id,
                "collected": [a.invoice_number for a, r, o in finished if o and o.invoice_paid],
                "status": self.storage.subscription(sub_id).status}  # fmt: skip

    def pay_online(self, number: str, token: str, on: date) -> dict[str, Any]:
        """The buyer pays an open invoice with a card now; a subscription waiting for its
        first paid invoice (``first_invoice``) keeps the card and is charged automatically
        from then on."""
        from abonnement.engine.billing_run import collect
        from abonnement.errors import CollectionError

        attempt = self.storage.invoice_attempt(number, on)
        invoice = self.storage.invoice(number)
        if attempt is None or invoice is None or invoice["status"] != "open":
            raise CollectionError(f"invoice {number} is not open")
        attempt = replace(attempt, token=token, method_type="card")
        finished = collect(self.storage, self.processor, [attempt], self.catalog.settings, on)
        _, result, outcome = finished[0] if finished else (None, None, None)
        if not (outcome and outcome.invoice_paid):
            code = result.failure_code if result else "timeout"
            raise CollectionError(f"the payment was declined ({code})")
        sub_id = invoice["subscription_id"]
        if sub_id:
            sub = self.storage.subscription(sub_id)
            if sub is not None and sub.collection_mode == "first_invoice":
                self.storage.set_payment_method(sub_id, token, "card")
            self.storage.refresh_dues(sub_id, on)
        return {"number": number, "status": "paid", "amount_paid": invoice["total"]}

    def refund(self, payment_id: int, amount: Any, on: date) -> dict[str, Any]:
        """Give money back for a payment; the subscription is left as it is."""
        from decimal import Decimal

        from abonnement.engine.money import Money
        from abonnement.errors import CollectionError

        rows = self.storage.payments()
        row = next((p for p in rows if p["id"] == payment_id), None)
        if row is None or row["status"] != "succeeded" or row["amount"] <= 0:
            raise CollectionError(f"payment {payment_id} is not a succeeded charge")
        refunded = -sum((p["amount"] for p in rows if p["invoice_number"] == row["invoice_number"]
                         and p["status"] == "refunded"), Decimal(0))  # fmt: skip
        left = row["amount"] - refunded
        try:
            value = Decimal(amount) if amount is not None else left
        except ArithmeticError:
            raise CollectionError(f"{amount!r} is not an amount") from None
        if not 0 < value <= left:
            most = Money(left, row["currency"]).format_amount()
            raise CollectionError(f"at most {most} can be refunded for payment {payment_id}")
        money = Money(value, row["currency"]).rounded()
        key = f"{row['invoice_number']}/refund-{payment_id}-{money.amount}"
        result = self.processor.refund(charge_key=row["idempotency_key"],
                                       reference=row["reference"], amount=money,
                                       idempotency_key=key, on=on)  # fmt: skip
        if result.status != "succeeded":
            raise CollectionError(f"the refund failed ({result.failure_code or result.status})")
        attempt = self.storage.record_refund(row["invoice_number"], money, row["method"], key,
                                             result.reference, on)  # fmt: skip
        return {"invoice": row["invoice_number"], "attempt": attempt,
                "amount": money.format_amount(), "currency": money.currency}  # fmt: skip

    def retry_payment(self, payment_id: int, on: date) -> dict[str, Any]:
        """A manual retry of the invoice behind payment ``payment_id`` (a limited number)."""
        from abonnement.engine.billing_run import collect
        from abonnement.errors import CollectionError

        rows = [p for p in self.storage.payments() if p["id"] == payment_id]
        if not rows:
            raise CollectionError(f"no payment {payment_id}")
        number = rows[0]["invoice_number"]
        limit = self.catalog.settings.manual_retry_limit
        if self.storage.manual_tries(number) >= limit:
            raise CollectionError(f"invoice {number} has had its {limit} manual retries")
        attempt = self.storage.invoice_attempt(number, on)
        invoice = self.storage.invoice(number)
        if attempt is None or invoice is None or invoice["status"] != "open":
            raise CollectionError(f"invoice {number} is not open")
        finished = collect(self.storage, self.processor, [attempt], self.catalog.settings, on)
        _, result, outcome = finished[0] if finished else (None, None, None)
        return {"invoice": number, "attempt": attempt.attempt,
                "status": outcome.payment_status if outcome else "pending",
                "failure_code": result.failure_code if result else None}  # fmt: skip


def _worker(config_dir: str, database_url: str, until: date, batch_size: int) -> Any:
    """One worker process of ``run --workers``."""
    summary, _ = App(Path(config_dir), database_url).run(until, batch_size=batch_size)
    return summary


def _link_secret() -> str:
    import os

    secret = os.environ.get("ABONNEMENT_LINK_SECRET")
    if not secret:
        raise AbonnementError("set ABONNEMENT_LINK_SECRET to sign payment-method update links")
    return secret


def _definition(sub: Any) -> tuple:
    return (sub.items, dict(sub.properties), sub.owner, sub.payment_method_id)


def _check_new(decl: Any, catalog: Catalog) -> None:
    """What the config loader checks of a declared subscription, for one made on the CLI."""
    import re

    from abonnement.config.settings import declared_property_problem

    for kind, ref, known in (("contact", decl.contact, catalog.contacts),
                             ("contact", decl.billing_contact, catalog.contacts),
                             ("company", decl.company, catalog.companies)):  # fmt: skip
        if ref is not None and ref not in known:
            raise AbonnementError(f"no {kind} `{ref}`")
    if decl.billing_address == "same_as_company" and not decl.company:
        raise AbonnementError("--billing-address same_as_company needs --company")
    if decl.currency not in catalog.settings.currencies:
        raise AbonnementError(f"{decl.currency} is not in settings.currencies")
    frequencies = set()
    for spec in decl.items:
        product = catalog.products.get(spec.product or "")
        if product is None:
            raise AbonnementError(f"no product `{spec.product}`")
        if not product.is_recurring:
            raise AbonnementError(f"`{product.id}` is sold once: a subscription bills "
                                  "recurring products (sell it with a quote or link)")  # fmt: skip
        if decl.currency not in product.currencies:
            raise AbonnementError(f"`{product.id}` has no price in {decl.currency}")
        frequencies.add(product.frequency)
    if len(frequencies) > 1:
        raise AbonnementError("the lines bill on different frequencies: one subscription per "
                              "frequency")  # fmt: skip
    terms = decl.collection.payment_terms
    if terms is not None and not re.fullmatch(r"due_on_receipt|net_\d+", terms):
        raise AbonnementError(f"bad payment terms `{terms}`; due_on_receipt or net_DAYS")
    if decl.collection.mode == "automatic":
        owners = [catalog.contacts.get(decl.contact),
                  catalog.contacts.get(decl.billing_contact or "")]  # fmt: skip
        saved = {m.id for who in owners if who for m in who.payment_methods}
        if decl.collection.payment_method not in saved:
            raise AbonnementError("automatic collection needs --payment-method, one the contact "
                                  f"saved ({', '.join(sorted(saved)) or 'none'})")  # fmt: skip
    for name, value in decl.properties.items():
        problem = declared_property_problem(catalog.settings, name, value)
        if problem:
            raise AbonnementError(f"{problem[0]}; {problem[1]}" if problem[1] else problem[0])
