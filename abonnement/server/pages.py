"""Buyer pages: a payment link (``/l/LINK``), an invoice (``/i/TOKEN``) and a payment-method
update (``/u/TOKEN``). Server-rendered, no JavaScript (but Stripe's own card fields when the
processor is ``stripe``), every form with a CSRF token. Each handler calls one operation; a
bad, expired or spent link is a friendly 404 page."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from abonnement.engine.status import PaymentStatus
from abonnement.errors import (
    AbonnementError,
    AlreadyCollecting,
    AlreadyPurchased,
    AuthenticationRequired,
    BelowMinimumCharge,
    CollectionError,
    InvalidInput,
    InvalidState,
    NotFound,
    PaymentDeclined,
)
from abonnement.operations import payments, purchases, queries
from abonnement.server import csrf
from abonnement.server.templating import language_of, render

if TYPE_CHECKING:
    from abonnement.engine.catalog import Address
    from abonnement.engine.records import InvoiceRecord
    from abonnement.server.app import Server

__all__ = ["failure", "not_found", "router"]

router = APIRouter(include_in_schema=False)

_ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "region", "country")
# the link page shows what each way of paying is called; the `test` processor takes its
# test tokens in a text field; a processor with a ``page()`` brings its own card fields
# (``stripe``: Stripe.js, so card numbers never reach this server)
_TOKEN_PROCESSORS = ("test",)


def _card_form(server: Server, refused: AbonnementError | None = None) -> dict[str, Any]:
    """``takes_token`` (the form can be sent), ``stripe`` (the processor's hosted fields,
    or None) and ``authenticate`` (the client secret of a card the bank wants the buyer to
    confirm, when ``refused`` says so: the page runs the check at once) for a page's card
    form."""
    ctx = server.ctx
    secret = refused.client_secret if isinstance(refused, AuthenticationRequired) else None
    if ctx.catalog.settings.processor in _TOKEN_PROCESSORS:
        return {"takes_token": True, "stripe": None, "authenticate": secret}
    page = getattr(ctx.processor, "page", None)
    hosted = page() if page else None
    return {"takes_token": hosted is not None, "stripe": hosted, "authenticate": secret}


def _server(request: Request) -> Server:
    return request.app.state.server


def _page(request: Request, template: str, language: str, *, status: int = 200,
          locale: str | None = None, **values: Any) -> HTMLResponse:  # fmt: skip
    """A page with the account's name and logo, and a CSRF cookie for its form."""
    server = _server(request)
    settings = server.ctx.catalog.settings
    cookie = request.cookies.get(csrf.COOKIE) or csrf.new_cookie()
    html = render(
        template, language, locale,
        account=settings.account, logo=settings.logo_src,
        csrf_field=csrf.FIELD, csrf_token=csrf.token(server.csrf_key, cookie, request.url.path),
        **values,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status)
    if request.cookies.get(csrf.COOKIE) != cookie:
        response.set_cookie(csrf.COOKIE, cookie, max_age=csrf.MAX_AGE * 12, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")  # fmt: skip
    return response


def not_found(request: Request, language: str | None = None) -> HTMLResponse:
    """The 404 page: the link is no longer valid (or never was)."""
    return _page(request, "not_found.html", language or language_of(request), status=404)


def failure(request: Request) -> HTMLResponse:
    """The 500 page: an apology, never a traceback."""
    return _page(request, "failure.html", language_of(request), status=500)


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is missing or not ours."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    cookie = request.cookies.get(csrf.COOKIE)
    if not csrf.valid(_server(request).csrf_key, cookie, request.url.path, form.get(csrf.FIELD)):
        return None
    return form


# the form fields a refusal can name; the page says what to fill in
_FIELDS = ("name", "email", "card", "line1", "shipping_line1")


def _refusal(exc: AbonnementError) -> str:
    """What a page shows for ``exc`` (``_macros.error_box`` translates it): the field to fill
    in, or why it cannot be done now. Never the error's own text: that is English, written
    for whoever runs the shop, and may name records the buyer should not see."""
    if isinstance(exc, AuthenticationRequired):  # not a decline: the bank wants the buyer
        return "problem:authenticate"
    if isinstance(exc, PaymentDeclined):
        return f"declined:{exc.failure_code or 'declined'}"
    if isinstance(exc, InvalidInput):
        return f"field:{exc.field}" if exc.field in _FIELDS else "problem:card_refused"
    if isinstance(exc, AlreadyCollecting):
        return "problem:collecting"
    if isinstance(exc, InvalidState):  # a pay or update link used or ended meanwhile
        return "problem:link_spent"
    if isinstance(exc, BelowMinimumCharge):
        return "problem:below_minimum"
    if isinstance(exc, CollectionError):
        return "problem:not_by_card"
    return "problem:unavailable"


# Which purchases this browser made (a cookie of invoice numbers, each with its MAC): a buyer
# back with the same link on the same day sees that purchase's receipt again; anyone else who
# types the same e-mail address learns only that it was bought.
_BOUGHT = "abonnement_bought"
_BOUGHT_KEPT = 5  # the last few purchases are enough to recognise a buyer coming back


def _bought_mac(key: bytes, number: str) -> str:
    return hmac.new(key, f"bought|{number}".encode(), hashlib.sha256).hexdigest()[:32]


def _bought_here(request: Request, number: str | None) -> bool:
    """Whether this browser made the purchase recorded as invoice ``number``."""
    if not number:
        return False
    want = f"{number}.{_bought_mac(_server(request).csrf_key, number)}"
    return any(hmac.compare_digest(have, want)
               for have in request.cookies.get(_BOUGHT, "").split())  # fmt: skip


def _remember_bought(request: Request, response: Response, number: str) -> None:
    kept = [v for v in request.cookies.get(_BOUGHT, "").split() if "." in v][-_BOUGHT_KEPT + 1 :]
    kept.append(f"{number}.{_bought_mac(_server(request).csrf_key, number)}")
    response.set_cookie(_BOUGHT, " ".join(kept), max_age=2 * 86400, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")  # fmt: skip


def _expired_form(request: Request, language: str) -> HTMLResponse:
    return _page(request, "expired_form.html", language, status=403, back=request.url.path)


# -- payment links ----------------------------------------------------------------------------


def _link_page(request: Request, link_id: str, language: str, *, status: int = 200,
               values: dict[str, str] | None = None, error: str | None = None,
               error_field: str | None = None,
               refused: AbonnementError | None = None) -> HTMLResponse:  # fmt: skip
    server = _server(request)
    ctx = server.ctx
    link = ctx.catalog.payment_links.get(link_id)
    if link is None:
        return not_found(request, language)
    summary = purchases.quote_link(ctx, link_id, server.today())
    return _page(
        request, "link.html", language, status=status, link=link, summary=summary,
        values=values or {}, error=error, error_field=error_field,
        address_fields=_ADDRESS_FIELDS if link.collect_billing_address else (),
        shipping_fields=_ADDRESS_FIELDS if link.collect_shipping_address else (),
        **_card_form(server, refused),
        methods=link.accepted_methods or ctx.catalog.settings.accepted_methods,
    )  # fmt: skip


@router.get("/l/{link_id}", response_class=HTMLResponse)
async def link_page(request: Request, link_id: str) -> Response:
    """The payment link's page: its summary and the buyer's form."""
    return _link_page(request, link_id, language_of(request))


@router.post("/l/{link_id}", response_class=HTMLResponse)
async def link_checkout(request: Request, link_id: str) -> Response:
    """Buy the link (``purchases.buy``): the confirmation with the receipt, or the form again
    with the reason it was refused."""
    from abonnement.operations.buyers import Buyer

    language = language_of(request)
    server = _server(request)
    link = server.ctx.catalog.payment_links.get(link_id)
    if link is None:
        return not_found(request, language)
    form = await _form(request)
    if form is None:
        return _expired_form(request, language)
    kept = {k: v for k, v in form.items() if k not in ("card", csrf.FIELD)}  # never the card
    try:
        address = shipping = None
        if link.collect_billing_address:
            address = _address(form, "", "billing")
        if link.collect_shipping_address:
            shipping = _address(form, "shipping_", "shipping")
        buyer = Buyer(form.get("name", ""), form.get("email", ""), address, language)
        result = purchases.buy(server.ctx, link_id, buyer, server.today(),
                               card=form.get("card", "").strip(),
                               shipping_address=shipping)  # fmt: skip
    except AlreadyPurchased as exc:
        return _bought_already(request, link, exc, language)
    except PaymentDeclined as exc:
        return _link_page(request, link_id, language, status=402, values=kept,
                          error=_refusal(exc), error_field="card", refused=exc)  # fmt: skip
    except AbonnementError as exc:
        return _link_page(request, link_id, language, status=exc.http_status, values=kept,
                          error=_refusal(exc), error_field=exc.field)  # fmt: skip
    response = _confirmation(request, link, result["invoice"], language,
                             subscriptions=result["subscriptions"])  # fmt: skip
    _remember_bought(request, response, result["invoice"])
    return response


def _confirmation(request: Request, link: Any, number: str, language: str, *,
                  subscriptions: list[str] | None = None, again: bool = False,
                  status: int = 200) -> HTMLResponse:  # fmt: skip
    """The receipt of the purchase recorded as invoice ``number`` (and ``subscriptions``, by
    default those its lines bill)."""
    ctx = _server(request).ctx
    invoice = queries.invoice(ctx, number)
    owners = ctx.storage.invoice_owners(number) if subscriptions is None else subscriptions
    contact = ctx.catalog.contacts.get(invoice.contact_id)
    return _page(request, "confirmation.html", language, status=status, link=link,
                 invoice=invoice, email=contact.email if contact else "", again=again,
                 subscriptions=[queries.subscription(ctx, s).subscription
                                for s in owners])  # fmt: skip


def _bought_already(
    request: Request, link: Any, exc: AlreadyPurchased, language: str
) -> HTMLResponse:
    """A buyer who bought this link today already: nothing was charged again. This browser's
    own purchase shows its receipt again; another is told what happened, without it."""
    if _bought_here(request, exc.invoice):
        return _confirmation(request, link, exc.invoice, language,  # type: ignore[arg-type]
                             again=True, status=409)  # fmt: skip
    return _page(
        request, "already_bought.html", language, status=409, link=link, back=request.url.path
    )


def _address(form: dict[str, str], prefix: str, what: str) -> Address:
    """The address typed in the form's ``prefix`` fields; ``InvalidInput`` on its first field
    when a street, city or two-letter country is missing."""
    from abonnement.engine.catalog import Address

    parts = {f: form.get(prefix + f, "").strip() or None for f in _ADDRESS_FIELDS}
    country = (parts["country"] or "").upper()
    if not parts["line1"] or not parts["city"] or not (len(country) == 2 and country.isalpha()):
        raise InvalidInput(f"enter the {what} address", field=prefix + "line1")
    return Address(**{**parts, "country": country})  # type: ignore[arg-type]


# -- invoices ---------------------------------------------------------------------------------


def _invoice(request: Request, token: str) -> InvoiceRecord | None:
    server = _server(request)
    try:
        return payments.invoice_of_link(server.ctx, token, server.today())
    except (AbonnementError, ValueError):
        return None


def _invoice_page(request: Request, token: str, row: InvoiceRecord, *, status: int = 200,
                  error: str | None = None,
                  refused: AbonnementError | None = None) -> HTMLResponse:  # fmt: skip
    server = _server(request)
    document = row.document
    language = language_of(request, document.get("language"))
    return _page(
        request, "invoice.html", language, status=status, locale=document.get("locale"),
        invoice=row, token=token, error=error,
        due=row.amount_due,
        **_card_form(server, refused),
    )  # fmt: skip


@router.get("/i/{token}", response_class=HTMLResponse)
async def invoice_page(request: Request, token: str) -> Response:
    """An open invoice behind a pay link: amount due, the pay form, the document."""
    row = _invoice(request, token)
    if row is None:
        return not_found(request)
    return _invoice_page(request, token, row)


@router.get("/i/{token}/document", response_class=HTMLResponse)
async def invoice_document(request: Request, token: str) -> Response:
    """The invoice document, as ``invoices render`` makes it."""
    row = _invoice(request, token)
    if row is None:
        return not_found(request)
    html = queries.render_invoice(_server(request).ctx, row.number, "html")
    return HTMLResponse(html)


@router.get("/i/{token}/pdf")
async def invoice_pdf(request: Request, token: str) -> Response:
    """The invoice document as a PDF download."""
    row = _invoice(request, token)
    if row is None:
        return not_found(request)
    pdf = queries.render_invoice(_server(request).ctx, row.number, "pdf")
    disposition = f'attachment; filename="{row.number}.pdf"'
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": disposition})  # fmt: skip


@router.post("/i/{token}", response_class=HTMLResponse)
async def invoice_pay(request: Request, token: str) -> Response:
    """Pay the invoice with the card (``payments.pay_through_link``)."""
    server = _server(request)
    row = _invoice(request, token)
    if row is None:
        return not_found(request)
    form = await _form(request)
    document = row.document
    language = language_of(request, document.get("language"))
    if form is None:
        return _expired_form(request, language)
    try:
        card = form.get("card", "").strip()
        if not card:
            raise InvalidInput("enter a card", field="card")
        done = payments.pay_through_link(server.ctx, token, card, server.today())
    except PaymentDeclined as exc:
        return _invoice_page(request, token, _invoice(request, token) or row, status=402,
                             error=_refusal(exc), refused=exc)  # fmt: skip
    except AbonnementError as exc:
        return _invoice_page(request, token, row, status=exc.http_status, error=_refusal(exc))
    if done["status"] == PaymentStatus.PROCESSING:  # a bank debit on its way: not paid yet
        return _invoice_page(request, token, row, status=202, error="problem:collecting")
    paid = queries.invoice(server.ctx, row.number)
    return _page(request, "invoice_paid.html", language, locale=document.get("locale"),
                 invoice=paid)  # fmt: skip


# -- payment-method updates -------------------------------------------------------------------


def _update_target(request: Request, token: str) -> dict[str, Any] | None:
    server = _server(request)
    try:
        return payments.update_link_target(server.ctx, token, server.today())
    except (AbonnementError, ValueError):
        return None


def _update_page(request: Request, token: str, target: dict[str, Any], *, status: int = 200,
                 error: str | None = None,
                 refused: AbonnementError | None = None) -> HTMLResponse:  # fmt: skip
    server = _server(request)
    sub = target["subscription"]
    contact = server.ctx.catalog.contacts.get(sub.billing_contact_id or sub.contact_id)
    language = language_of(request, contact.language if contact else None)
    owed = sum((r.amount_due.amount for r in target["open"]), start=Decimal(0))
    return _page(
        request, "update.html", language, status=status,
        locale=contact.locale if contact else None, subscription=sub, open=target["open"],
        owed=owed, error=error, name=contact.name if contact else "",
        **_card_form(server, refused),
    )  # fmt: skip


@router.get("/u/{token}", response_class=HTMLResponse)
async def update_page(request: Request, token: str) -> Response:
    """The payment-method update page: what is past due, the card form."""
    target = _update_target(request, token)
    if target is None:
        return not_found(request)
    return _update_page(request, token, target)


@router.post("/u/{token}", response_class=HTMLResponse)
async def update_save(request: Request, token: str) -> Response:
    """Save the card and collect what is past due (``payments.update_payment_method``)."""
    server = _server(request)
    target = _update_target(request, token)
    if target is None:
        return not_found(request)
    form = await _form(request)
    sub = target["subscription"]
    contact = server.ctx.catalog.contacts.get(sub.billing_contact_id or sub.contact_id)
    language = language_of(request, contact.language if contact else None)
    if form is None:
        return _expired_form(request, language)
    card = form.get("card", "").strip()
    if not card:
        return _update_page(request, token, target, status=422, error="field:card")
    try:
        result = payments.update_payment_method(server.ctx, token, card, server.today())
    except NotFound:
        return not_found(request, language)
    except AbonnementError as exc:
        return _update_page(request, token, target, status=exc.http_status,
                            error=_refusal(exc), refused=exc)  # fmt: skip
    collected = [queries.invoice(server.ctx, n) for n in result["collected"]]
    still_open = [r for r in target["open"] if r.number not in result["collected"]]
    return _page(request, "updated.html", language,
                 locale=contact.locale if contact else None, collected=collected,
                 still_open=still_open)  # fmt: skip
