"""The ASGI app: buyer pages, processor webhooks and ``/api/v1``, over one project.

Every handler calls one operation and renders its result, as a CLI command does. Handlers run
on the event loop's thread, one at a time per process: the operations are synchronous and
share one storage and one processor. Serve more at once with more processes (all on one
PostgreSQL): ``uvicorn --factory abonnement.server.asgi:app --workers 4``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from abonnement.server import api, hooks, pages

if TYPE_CHECKING:
    from abonnement.app import App
    from abonnement.operations.context import Context

__all__ = ["Server", "create_app"]


@dataclass
class Server:
    """What every handler works with: the project, its clock and the CSRF key."""

    project: App
    today: Callable[[], date]
    csrf_key: bytes

    @property
    def ctx(self) -> Context:
        return self.project.context


def _csrf_key(ctx: Context) -> bytes:
    """Derived from the link secret, so every process behind one proxy agrees; a random key
    per process without one (a form then works on the process that made it)."""
    secret = ctx.link_secret(required=False)
    if not secret:
        return secrets.token_bytes(32)
    return hmac.new(secret.encode(), b"abonnement csrf", hashlib.sha256).digest()


def create_app(project: App, *, today: Callable[[], date] | None = None) -> FastAPI:
    """The server for ``project`` (config and database). ``today`` is the date operations
    act on (default: today in the account's time zone, read per request). Loads the config
    now: a ``ConfigError`` stops start-up with every problem listed."""
    ctx = project.context
    server = Server(project, today or ctx.today, _csrf_key(ctx))
    app = FastAPI(title=f"abonnement: {ctx.catalog.settings.account}", docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.server = server
    app.include_router(pages.router)
    app.include_router(hooks.router)
    app.mount("/api/v1", api.create_api(server))

    @app.exception_handler(StarletteHTTPException)
    async def _not_found(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 404:
            return pages.not_found(request)
        return HTMLResponse(f"<h1>{exc.status_code}</h1>", status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Any:
        # a bug of ours: the buyer gets an apology, never a traceback (the log has it)
        return pages.failure(request)

    @app.get("/healthz", include_in_schema=False)
    async def _health() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app
