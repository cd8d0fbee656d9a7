"""``abonnement serve``: buyer pages (payment links, invoices, payment-method updates),
processor webhooks and the HTTP API, as one ASGI app over the same operations as the CLI.

Needs the ``server`` extra (FastAPI, uvicorn, python-multipart)."""

from __future__ import annotations

from abonnement.server.app import Server, create_app

__all__ = ["Server", "create_app"]
