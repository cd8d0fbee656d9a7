"""Read-only operations: listings, one record with its history, segments, documents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.errors import InvalidInput, NotFound, Problem
from abonnement.operations.context import Context
from abonnement.operations.progress import Progress, counted

if TYPE_CHECKING:
    from abonnement.engine.records import (
        CreditNoteRecord,
        EventRecord,
        InvoiceRecord,
        PaymentRecord,
    )
    from abonnement.engine.subscriptions import Subscription

__all__ = [
    "SubscriptionDetail",
    "credit_note",
    "credit_notes",
    "invoice",
    "invoices",
    "payments",
    "render_credit_note",
    "render_invoice",
    "segment",
    "subscription",
    "subscriptions",
    "template_problems",
]


@dataclass(frozen=True)
class SubscriptionDetail:
    """One subscription with what hangs off it: its invoices (numbers, oldest first), its
    payment attempts and its history of events."""

    subscription: Subscription
    invoices: list[str]
    payments: list[PaymentRecord]
    history: list[EventRecord]


def subscriptions(
    ctx: Context,
    *,
    status: str | None = None,
    segment_name: str | None = None,
    on: date | None = None,
) -> list[Subscription]:
    """Every subscription (optionally of one ``status``, or the members of a subscription
    segment on ``on``), in id order."""
    if segment_name is None:
        return ctx.storage.subscriptions(status)
    if on is None:
        raise InvalidInput("a segment is evaluated on a date")
    kind, members = segment(ctx, segment_name, on)
    if kind != "subscriptions":
        raise InvalidInput(f"segment `{segment_name}` is of {kind}: use `segments show`")
    return [s for s in members if status is None or s.status == status]


def subscription(ctx: Context, sub_id: str) -> SubscriptionDetail:
    """One subscription, its invoices, payments and history; ``NotFound`` if there is none."""
    sub = ctx.storage.subscription(sub_id)
    if sub is None:
        raise NotFound("subscription", sub_id)
    return SubscriptionDetail(
        sub,
        [i.number for i in ctx.storage.invoices(sub_id)],
        ctx.storage.payments(sub_id, None),
        ctx.storage.events(sub_id),
    )


def invoices(
    ctx: Context, *, subscription_id: str | None = None, status: str | None = None
) -> list[InvoiceRecord]:
    """Stored invoices, optionally of one subscription or one status, in number order;
    ``InvalidInput`` for a status no invoice can have."""
    from abonnement.engine.status import InvoiceStatus

    if status is not None and status not in set(InvoiceStatus):
        known = ", ".join(InvoiceStatus)
        raise InvalidInput(f"no invoice status `{status}`; one of {known}", field="status")
    return ctx.storage.invoices(subscription_id, status)


def invoice(ctx: Context, number: str) -> InvoiceRecord:
    """One stored invoice with its lines and adjustments; ``NotFound`` if there is none."""
    found = ctx.storage.invoice(number)
    if found is None:
        raise NotFound("invoice", number)
    return found


def payments(
    ctx: Context, *, subscription_id: str | None = None, invoice_number: str | None = None
) -> list[PaymentRecord]:
    """Payment attempts (charges, manual payments, refunds), oldest first."""
    return ctx.storage.payments(subscription_id, invoice_number)


def report(
    ctx: Context,
    metric: str,
    as_of: date,
    *,
    currency: str | None = None,
    months: list[date] | None = None,
    progress: Progress | None = None,
) -> tuple[str, Any, list[tuple[date, Any]]]:
    """``metric`` (mrr, arr, active, churn, subscription_churn, movements) on ``as_of`` and by
    month: ``(currency, value, [(month start, value)])`` from the stored history.
    ``progress`` is told ``(subscriptions read, None)``: they are streamed, not counted."""
    from abonnement.engine.analytics import report as compute

    currency = currency or ctx.catalog.settings.default_currency
    histories = counted(ctx.storage.histories(currency), progress)
    value, series = compute(metric, histories, ctx.catalog.settings,
                            currency=currency, as_of=as_of, months=months or [])  # fmt: skip
    return currency, value, series


def segment(ctx: Context, name: str, on: date) -> tuple[str, list[Any]]:
    """The members of segment ``name`` on ``on``: ``("subscriptions", [Subscription…])``
    or ``("contacts", [Contact…])`` (F27)."""
    from abonnement.config.schemas import did_you_mean
    from abonnement.engine.context import segment_context

    segment = ctx.rules.segments.get(name)
    if segment is None:
        hint = did_you_mean(name, list(ctx.rules.segments)) or "segments are rule blocks"
        raise NotFound("segment", name, hint)
    catalog = ctx.catalog
    with_mrr = ctx.rules.reads("subscription", "mrr")
    if segment.of == "contacts":
        members = [
            contact for contact in catalog.contacts.values()
            if segment.where(segment_context(catalog, on, contact_id=contact.id))
        ]  # fmt: skip
        return "contacts", members
    subs = []
    for sub in ctx.storage.subscriptions():
        if segment.where(segment_context(catalog, on, sub=sub, with_mrr=with_mrr,
                                         recurring=ctx.recurring)):  # fmt: skip
            subs.append(sub)
    return "subscriptions", subs


def render_invoice(ctx: Context, number: str, fmt: str = "html") -> bytes:
    """The customer-facing document of invoice ``number``: HTML text or PDF bytes."""
    from abonnement.documents.invoice import render_html, render_pdf
    from abonnement.operations.payments import pay_url

    found = invoice(ctx, number)
    sub = ctx.storage.subscription(found.subscription_id) if found.subscription_id else None
    html = render_html(found, ctx.catalog, subscription=sub,
                       template_dir=ctx.config_dir / "templates",
                       pay_url=pay_url(ctx, found), billed=_billed(ctx, found, sub),
                       credit_notes=ctx.storage.credit_notes(number))  # fmt: skip
    return render_pdf(html) if fmt == "pdf" else html.encode()


def _billed(ctx: Context, found: InvoiceRecord, sub: Subscription | None) -> dict[str, Any]:
    """The subscriptions the invoice's lines bill, by id (its own, or a purchase's)."""
    billed = {sub.id: sub} if sub is not None else {}
    for line in found.lines:
        if line.subscription_id and line.subscription_id not in billed:
            other = ctx.storage.subscription(line.subscription_id)
            if other is not None:
                billed[other.id] = other
    return billed


def credit_notes(ctx: Context, invoice_number: str | None = None) -> list[CreditNoteRecord]:
    """Credit notes in the order they were issued (only those of ``invoice_number``)."""
    if invoice_number is not None:
        invoice(ctx, invoice_number)  # NotFound for an invoice that does not exist
    return ctx.storage.credit_notes(invoice_number)


def credit_note(ctx: Context, number: str) -> CreditNoteRecord:
    """One credit note; ``NotFound`` if there is none."""
    found = ctx.storage.credit_note(number)
    if found is None:
        raise NotFound("credit note", number)
    return found


def render_credit_note(ctx: Context, number: str, fmt: str = "html") -> bytes:
    """The customer-facing document of credit note ``number`` (in its invoice's language and
    locale): HTML text or PDF bytes."""
    from abonnement.documents.credit_note import render_html
    from abonnement.documents.invoice import render_pdf

    note = credit_note(ctx, number)
    found = invoice(ctx, note.invoice_number)
    sub = ctx.storage.subscription(found.subscription_id) if found.subscription_id else None
    html = render_html(note, found, ctx.catalog, subscription=sub,
                       template_dir=ctx.config_dir / "templates")  # fmt: skip
    return render_pdf(html) if fmt == "pdf" else html.encode()


def template_problems(ctx: Context) -> list[Problem]:
    """Every template of the config's ``templates/`` that does not compile or render with
    sample data, as ``file:line`` problems (``abonnement validate``). Opens no database."""
    from abonnement.documents.samples import template_problems as problems

    return problems(ctx.config_dir, ctx.catalog)
