"""``/api/v1``: the CLI's operations over HTTP, answering the CLI's ``--json`` shapes.

Every request needs ``Authorization: Bearer KEY`` (``abonnement api-keys create NAME``).
Errors are ``{"error": {"code", "message", "field"}}`` with the error's HTTP status. A write
with an ``Idempotency-Key`` header is answered once: the same key and request again get the
first answer (``Idempotent-Replayed: true``), the key with another request gets 409."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from abonnement.errors import AbonnementError, InvalidInput, Unauthorized
from abonnement.operations import access, lifecycle, payments, purchases, queries
from abonnement.operations import plan as planning

if TYPE_CHECKING:
    from abonnement.server.app import Server

__all__ = ["create_api", "error_body"]

_AMOUNT = r"^[0-9]{1,15}(\.[0-9]{1,6})?$"  # money as text: a JSON number would be a float
_METRICS = Literal["mrr", "arr", "churn", "subscription_churn", "active", "movements"]
_bearer = HTTPBearer(auto_error=False, description="A key from `abonnement api-keys create`.")


def error_body(exc: AbonnementError) -> dict[str, Any]:
    """The ``error`` object: the CLI's JSON error, with ``field`` always there."""
    return {**exc.as_json(), "field": exc.field}


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _server(request: Request) -> Server:
    return request.app.state.server


def _bounded(day: date) -> date:
    """A date within ``engine.bounds`` (1900-01-01 to 2099-12-31), as the CLI's date options
    take: anything else is a 422 naming the field, never a run billing from the year 1."""
    from abonnement.engine.bounds import day_problem

    problem = day_problem(day)
    if problem:
        raise ValueError(problem)
    return day


Day = Annotated[date, AfterValidator(_bounded)]


def _on(request: Request, as_of: date | None) -> date:
    return as_of or _server(request).today()


async def _caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The name of the API key the request carries; 401 without a live one."""
    if credentials is None:
        raise Unauthorized("send an API key: Authorization: Bearer KEY")
    name = access.authenticate(_server(request).ctx, credentials.credentials)
    if name is None:
        raise Unauthorized("this API key is unknown or revoked")
    return name


async def _write(
    request: Request, caller: str, run: Callable[[], Any], status: int = 200
) -> Response:
    """Run a write once per ``Idempotency-Key`` (when the request has one)."""
    server = _server(request)
    key = request.headers.get("idempotency-key")
    if key is None:
        return _json(run(), status)
    fingerprint = b"\n".join([request.method.encode(), request.url.path.encode(),
                              request.url.query.encode(), await request.body()])  # fmt: skip
    first = access.claim(server.ctx, caller, key, fingerprint, server.today())
    if first is not None:
        return Response(first[1], status_code=first[0], media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})  # fmt: skip
    try:
        payload, code = run(), status
    except AbonnementError as exc:  # a refusal is an answer too: the same request gets it
        payload, code = {"error": error_body(exc)}, exc.http_status
    except BaseException:
        access.release(server.ctx, caller, key)
        raise
    text = json.dumps(payload, ensure_ascii=False, default=str)
    access.answer(server.ctx, caller, key, code, text)
    return Response(text, status_code=code, media_type="application/json")


# -- request bodies ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(_Body):
    product: str = Field(min_length=1)
    quantity: int = Field(1, ge=1)


class AsOf(_Body):
    as_of: Day | None = Field(None, description="Act as of this date (default: today).")


class SubscriptionCreate(AsOf):
    id: str = Field(min_length=1)
    contact_id: str
    company_id: str | None = None
    billing_contact_id: str | None = None
    billing_address: Literal["same_as_company"] | None = None
    items: list[Item] = Field(min_length=1)
    currency: str | None = None
    start: Day | None = None
    payments: int | None = Field(None, ge=1)
    collection: Literal["manual", "automatic"] = "manual"
    payment_method_id: str | None = None
    payment_terms: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    invoice_creation: bool = True


class SubscriptionEdit(AsOf):
    """Line changes apply in this order: add, clone, quantity, price, discount, delete, move;
    lines are counted from 1."""

    add: list[Item] = Field(default_factory=list)
    clone: list[int] = Field(default_factory=list)
    quantity: dict[int, int] = Field(default_factory=dict)
    price: dict[int, str] = Field(default_factory=dict, description='e.g. {"2": "20.00 USD"}')
    discount: dict[int, str] = Field(default_factory=dict, description='e.g. {"1": "10%"}')
    delete: list[int] = Field(default_factory=list)
    move: dict[int, int] = Field(default_factory=dict)
    payment_method_id: str | None = None
    contact_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    next_payment_date: Day | None = None
    prorate: bool = False


class Cancel(AsOf):
    at_period_end: bool = False


class InvoicePay(AsOf):
    amount: str | None = Field(None, pattern=_AMOUNT, description="Default: the amount due.")
    method: str = "manual"
    card: str | None = Field(None, description="Pay online now with this card token.")


class Refund(AsOf):
    amount: str | None = Field(None, pattern=_AMOUNT, description="Default: all not refunded.")


class QuoteRequest(AsOf):
    contact_id: str
    items: list[Item] = Field(min_length=1)
    start: Day | None = None
    payments: int | None = Field(None, ge=1)


class CheckoutRequest(AsOf):
    link_id: str
    contact_id: str
    card: str | None = None
    payment_method_id: str | None = None


# -- routes -----------------------------------------------------------------------------------

router = APIRouter()
Caller = Annotated[str, Depends(_caller)]  # the API key's name


def _sub(request: Request, sub: Any) -> dict[str, Any]:
    from abonnement.views import subscription_json

    ctx = _server(request).ctx
    return subscription_json(sub, ctx.catalog.settings, ctx.recurring)


@router.get("/subscriptions", tags=["subscriptions"])
async def list_subscriptions(
    request: Request,
    status: str | None = None,
    segment: str | None = None,
    as_of: Day | None = None,
) -> Any:
    """Every subscription, optionally of one status or the members of a segment."""
    ctx = _server(request).ctx
    on = _on(request, as_of) if segment else None
    found = queries.subscriptions(ctx, status=status, segment_name=segment, on=on)
    return _json([_sub(request, s) for s in found])


@router.get("/subscriptions/{subscription_id}", tags=["subscriptions"])
async def show_subscription(request: Request, subscription_id: str) -> Any:
    """One subscription with its invoices, payments and history."""
    from abonnement.views import subscription_detail_json

    ctx = _server(request).ctx
    detail = queries.subscription(ctx, subscription_id)
    return _json(subscription_detail_json(detail, ctx.catalog.settings, ctx.recurring))


@router.post("/subscriptions", tags=["subscriptions"], status_code=201)
async def create_subscription(request: Request, body: SubscriptionCreate, caller: Caller) -> Any:
    """Create a subscription from scratch (``subscriptions create``)."""
    from abonnement.engine.catalog import (
        AUTO_RENEW,
        Collection,
        DeclaredSubscription,
        ItemSpec,
        Terms,
    )
    from abonnement.engine.schedule import AtPurchase, OnDate

    ctx = _server(request).ctx

    def run() -> Any:
        decl = DeclaredSubscription(
            id=body.id, contact=body.contact_id,
            currency=body.currency or ctx.catalog.settings.default_currency,
            items=tuple(ItemSpec(product=i.product, quantity=i.quantity) for i in body.items),
            company=body.company_id, billing_contact=body.billing_contact_id,
            billing_address=body.billing_address,
            start=OnDate(body.start) if body.start else AtPurchase(),
            terms=Terms(payments=body.payments) if body.payments else AUTO_RENEW,
            invoice_creation=body.invoice_creation,
            collection=Collection(mode=body.collection, payment_method=body.payment_method_id,
                                  payment_terms=body.payment_terms),
            properties=body.properties,
        )  # fmt: skip
        return _sub(request, lifecycle.create(ctx, decl, _on(request, body.as_of)))

    return await _write(request, caller, run, 201)


@router.patch("/subscriptions/{subscription_id}", tags=["subscriptions"])
async def edit_subscription(
    request: Request, subscription_id: str, body: SubscriptionEdit, caller: Caller
) -> Any:
    """Change lines, payment method, contact, properties or the next payment date, from the
    next cycle (``subscriptions edit``)."""
    from abonnement.engine.catalog import ItemSpec
    from abonnement.engine.edits import ItemOp

    ctx = _server(request).ctx

    def run() -> Any:
        ops = [ItemOp("clone", p) for p in body.clone]
        ops += [ItemOp("quantity", p, v) for p, v in body.quantity.items()]
        ops += [ItemOp("price", p, v) for p, v in body.price.items()]
        ops += [ItemOp("discount", p, v) for p, v in body.discount.items()]
        ops += [ItemOp("delete", p) for p in body.delete]
        ops += [ItemOp("move", p, v) for p, v in body.move.items()]
        sub = lifecycle.edit(
            ctx, subscription_id, _on(request, body.as_of),
            add=[ItemSpec(product=i.product, quantity=i.quantity) for i in body.add], ops=ops,
            payment_method_id=body.payment_method_id, contact_id=body.contact_id,
            prorate=body.prorate, next_payment_date=body.next_payment_date,
            properties=body.properties,
        )  # fmt: skip
        return _sub(request, sub)

    return await _write(request, caller, run)


@router.post("/subscriptions/{subscription_id}/pause", tags=["subscriptions"])
async def pause_subscription(
    request: Request, subscription_id: str, caller: Caller, body: AsOf | None = None
) -> Any:
    """Stop billing; nothing is billed while paused."""
    on = _on(request, body.as_of if body else None)
    return await _write(request, caller, lambda: _sub(
        request, lifecycle.pause(_server(request).ctx, subscription_id, on)))  # fmt: skip


@router.post("/subscriptions/{subscription_id}/resume", tags=["subscriptions"])
async def resume_subscription(
    request: Request, subscription_id: str, caller: Caller, body: AsOf | None = None
) -> Any:
    """Bill again from the first payment date on or after the date."""
    on = _on(request, body.as_of if body else None)
    return await _write(request, caller, lambda: _sub(
        request, lifecycle.resume(_server(request).ctx, subscription_id, on)))  # fmt: skip


@router.post("/subscriptions/{subscription_id}/cancel", tags=["subscriptions"])
async def cancel_subscription(
    request: Request, subscription_id: str, caller: Caller, body: Cancel | None = None
) -> Any:
    """Cancel now, or at the end of the period."""
    body = body or Cancel()
    on = _on(request, body.as_of)
    return await _write(request, caller, lambda: _sub(request, lifecycle.cancel(
        _server(request).ctx, subscription_id, on, at_period_end=body.at_period_end)))  # fmt: skip


@router.get("/invoices", tags=["invoices"])
async def list_invoices(
    request: Request, subscription: str | None = None, status: str | None = None
) -> Any:
    """Invoices without their lines, optionally of one subscription or status."""
    from abonnement.views import invoice_summary_json

    found = queries.invoices(_server(request).ctx, subscription_id=subscription, status=status)
    return _json([invoice_summary_json(r) for r in found])


@router.get("/invoices/{number}", tags=["invoices"])
async def show_invoice(request: Request, number: str) -> Any:
    """One invoice with its lines and adjustments."""
    from abonnement.operations.webhooks import invoice_detail

    return _json(invoice_detail(_server(request).ctx, number))


@router.get("/invoices/{number}/pdf", tags=["invoices"], response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})  # fmt: skip
async def invoice_pdf(request: Request, number: str) -> Response:
    """The customer-facing document as a PDF."""
    pdf = queries.render_invoice(_server(request).ctx, number, "pdf")
    disposition = f'attachment; filename="{number}.pdf"'
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": disposition})  # fmt: skip


@router.post("/invoices/{number}/pay", tags=["invoices"])
async def pay_invoice(
    request: Request, number: str, caller: Caller, body: InvoicePay | None = None
) -> Any:
    """Record a payment made outside the processor, or pay online now with ``card``."""
    body = body or InvoicePay()
    ctx, on = _server(request).ctx, _on(request, body.as_of)

    def run() -> Any:
        if body.card:
            result = payments.pay_online(ctx, number, body.card, on)
        else:
            amount = Decimal(body.amount) if body.amount else None
            result = payments.pay_invoice(ctx, number, on, amount=amount, method=body.method)
        return {**result, "amount_paid": result["amount_paid"].format_amount()}

    return await _write(request, caller, run)


@router.get("/payments", tags=["payments"])
async def list_payments(
    request: Request, subscription: str | None = None, invoice: str | None = None
) -> Any:
    """Every payment attempt, oldest first."""
    from abonnement.views import payment_json

    found = queries.payments(_server(request).ctx, subscription_id=subscription,
                             invoice_number=invoice)  # fmt: skip
    return _json([payment_json(r) for r in found])


@router.post("/payments/{payment_id}/retry", tags=["payments"])
async def retry_payment(
    request: Request, payment_id: int, caller: Caller, body: AsOf | None = None
) -> Any:
    """Retry the invoice of a payment now (a limited number of manual retries)."""
    on = _on(request, body.as_of if body else None)
    return await _write(request, caller,
                        lambda: payments.retry(_server(request).ctx, payment_id, on))  # fmt: skip


@router.post("/payments/{payment_id}/refund", tags=["payments"])
async def refund_payment(
    request: Request, payment_id: int, caller: Caller, body: Refund | None = None
) -> Any:
    """Refund a payment (default: everything not refunded yet)."""
    body = body or Refund()
    on = _on(request, body.as_of)
    return await _write(request, caller, lambda: payments.refund(
        _server(request).ctx, payment_id, body.amount, on))  # fmt: skip


@router.post("/quotes", tags=["purchases"])
async def quote(request: Request, body: QuoteRequest, caller: Caller) -> Any:
    """The summary of a prospective purchase: due now, future payments, total. Writes
    nothing."""
    from abonnement.views import quote_json

    purchase = body.as_of or body.start or _server(request).today()
    summary = purchases.quote(_server(request).ctx, body.contact_id,
                              [(i.product, i.quantity) for i in body.items], purchase,
                              start=body.start, payments=body.payments)  # fmt: skip
    return _json(quote_json(summary))


@router.post("/checkouts", tags=["purchases"], status_code=201)
async def checkout(request: Request, body: CheckoutRequest, caller: Caller) -> Any:
    """Buy a payment link as a contact: charge what is due now, create the subscriptions."""
    on = _on(request, body.as_of)
    return await _write(request, caller, lambda: purchases.checkout(
        _server(request).ctx, body.link_id, body.contact_id, on, card=body.card,
        payment_method_id=body.payment_method_id), 201)  # fmt: skip


@router.get("/reports/{metric}", tags=["reports"])
async def report(
    request: Request,
    metric: _METRICS,
    as_of: Day | None = None,
    from_: Annotated[Day | None, Query(alias="from", description="First month.")] = None,
    to: Annotated[Day | None, Query(description="Last month (default: as_of).")] = None,
    currency: str | None = None,
) -> Any:
    """MRR, ARR, active, churn, subscription churn or MRR movements, at a date or by month."""
    from abonnement.engine.analytics import month_starts
    from abonnement.views import report_json

    on = _on(request, as_of)
    if from_ and (to or on) < from_:
        raise InvalidInput("`from` is after `to` (or `as_of`)", field="from")
    months = month_starts(from_, to or on) if from_ else []
    found_currency, value, series = queries.report(_server(request).ctx, metric, on,
                                                   currency=currency, months=months)  # fmt: skip
    return _json(report_json(metric, found_currency, on, value, series))


@router.get("/segments/{name}", tags=["reports"])
async def segment(request: Request, name: str, as_of: Day | None = None) -> Any:
    """The members of a segment on a date."""
    from abonnement.views import segment_json

    on = _on(request, as_of)
    kind, members = queries.segment(_server(request).ctx, name, on)
    return _json(segment_json(name, kind, on, members))


@router.get("/plan", tags=["config"])
async def plan(
    request: Request,
    months: Annotated[int, Query(ge=1, le=120)] = 3,
    prorate: bool = False,
    as_of: Day | None = None,
) -> Any:
    """What ``abonnement apply`` would do, and its effect on the next months' invoices."""
    result = planning.plan(_server(request).ctx, _on(request, as_of), months, prorate=prorate)
    return _json(result.as_json())


# -- the app ----------------------------------------------------------------------------------


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def create_api(server: Server) -> FastAPI:
    """The ``/api/v1`` app: the routes above behind API keys, errors in one shape."""
    api = FastAPI(title="abonnement API", version="1", openapi_url="/openapi.json",
                  docs_url="/docs", redoc_url=None,
                  description=__doc__)  # fmt: skip
    api.state.server = server
    api.include_router(router, dependencies=[Depends(_caller)])

    @api.exception_handler(AbonnementError)
    async def _refused(request: Request, exc: AbonnementError) -> Response:
        return _json({"error": error_body(exc)}, exc.http_status)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return _json({"error": {"code": InvalidInput.code, "message": message,
                                "field": field or None}}, 422)  # fmt: skip

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return _json({"error": {"code": code, "message": str(exc.detail), "field": None}},
                     exc.status_code)  # fmt: skip

    @api.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        message = "the server failed; the log has the details"
        return _json({"error": {"code": "internal_error", "message": message, "field": None}}, 500)

    return api
