"""``POST /hooks/{processor}``: a payment processor's webhook, recorded once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from abonnement.errors import AbonnementError
from abonnement.operations import webhooks

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.post("/hooks/{processor}")
async def receive(request: Request, processor: str) -> JSONResponse:
    """200 with ``{"event", "type", "recorded"}``; 400 for an unsigned, forged, malformed or
    replayed event (nothing changed); 404 for a processor the account does not use."""
    server = request.app.state.server
    body = await request.body()
    try:
        result = webhooks.receive(server.ctx, processor, dict(request.headers), body,
                                  server.today())  # fmt: skip
    except AbonnementError as exc:
        return JSONResponse({"error": exc.as_json()}, status_code=exc.http_status)
    return JSONResponse(result)
